"""Projector heads: initialised as the paper's code (weights N(0, 0.02), biases zero)."""

import pytest
import torch
from torch import nn

from mirai_cli.foresight.projector import INIT_STD, make_projectors


def test_projector_init_as_papers_code():
    torch.manual_seed(0)
    heads = make_projectors(2, 96, 80, hidden_dim=256)
    linears = [m for m in heads.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 6
    for layer in linears:
        assert torch.count_nonzero(layer.bias) == 0
        w = layer.weight.detach()
        assert w.mean().item() == pytest.approx(0.0, abs=3e-3)
        # PyTorch's default (kaiming-uniform, std 1/sqrt(3 fan_in)) would give 0.059 at fan_in 96, 0.036 at 256
        assert w.std().item() == pytest.approx(INIT_STD, rel=0.05)
