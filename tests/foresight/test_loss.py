"""Negative-cosine loss on hand-made tensors with known values."""

import math

import pytest
import torch

from mirai_cli.foresight.loss import foresight_losses, negative_cosine


def test_negative_cosine_known_values():
    pred = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]])
    tgt = torch.tensor([[2.0, 0.0], [1.0, 0.0], [4.0, 3.0]])
    # cosines: 1, 0, 24/25
    assert negative_cosine(pred, tgt).item() == pytest.approx(-(1.0 + 0.0 + 0.96) / 3)
    # scale-invariant, and the mean runs over every leading dim (batch x pairs)
    assert negative_cosine(5 * pred[None], 0.1 * tgt[None]).item() == pytest.approx(-(1.96) / 3)
    opposite = negative_cosine(torch.tensor([[1.0, 1.0]]), torch.tensor([[-2.0, -2.0]]))
    assert opposite.item() == pytest.approx(1.0)


def test_weighted_total_and_every_term():
    p0 = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], requires_grad=True)  # head 0: cos 1 and 0 -> L0 = -0.5
    t0 = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    p1 = torch.tensor([[[1.0, 1.0]]], requires_grad=True)  # head 1: cos -1 -> L1 = +1
    t1 = torch.tensor([[[-1.0, -1.0]]])
    out = foresight_losses([p0, p1], [t0, t1], [2.0, 0.5])
    assert set(out) == {"foresight_h0", "foresight_h1", "foresight"}
    assert out["foresight_h0"].item() == pytest.approx(-0.5)
    assert out["foresight_h1"].item() == pytest.approx(1.0)
    assert out["foresight"].item() == pytest.approx(2.0 * -0.5 + 0.5 * 1.0)
    out["foresight"].backward()
    # d(-cos)/dp for p=(0,1), t=(1,0): -(t/|t||p| - cos p/|p|^2) = (-1, 0); weighted by 2 / 2 pairs
    assert p0.grad[0, 1].tolist() == pytest.approx([-1.0, 0.0])
    assert p0.grad[0, 0].tolist() == pytest.approx([0.0, 0.0])  # already aligned: zero gradient


def test_bf16_inputs_are_computed_in_fp32_and_empty_heads_give_zero():
    a = torch.randn(2, 5, 8)
    b = torch.randn(2, 5, 8)
    exact = negative_cosine(a, b)
    low = negative_cosine(a.bfloat16(), b.bfloat16())
    assert low.dtype == torch.float32 and abs(low.item() - exact.item()) < 2e-2
    empty = torch.zeros(2, 0, 8, requires_grad=True)
    z = negative_cosine(empty, torch.zeros(2, 0, 8))
    assert z.item() == 0.0 and z.requires_grad
    assert not math.isnan(foresight_losses([empty], [torch.zeros(2, 0, 8)], [2.0])["foresight"].item())


def test_mismatched_shapes_raise():
    with pytest.raises(ValueError):
        negative_cosine(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError):
        foresight_losses([torch.zeros(1, 2)], [torch.zeros(1, 2)], [1.0, 2.0])
