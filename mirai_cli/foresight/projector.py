"""Projector heads rho_k (docs/method.md, Foresight): one MLP per head, shared by all positions."""

from __future__ import annotations

import torch
from torch import nn

INIT_STD = 0.02  # the paper's code: every projector weight N(0, 0.02), every bias zero


def init_linear(layer: nn.Linear, std: float = INIT_STD) -> None:
    nn.init.normal_(layer.weight, mean=0.0, std=std)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class Projector(nn.Module):
    """Linear(d, hidden) - SiLU - Linear(hidden, hidden) - SiLU - Linear(hidden, teacher_dim).
    No norm on the student side (the paper's choice). Weights N(0, 0.02), biases zero (the paper's code)."""

    def __init__(self, student_dim: int, teacher_dim: int, hidden_dim: int = 2048) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(student_dim, hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, teacher_dim),
        )
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                init_linear(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_projectors(num_heads: int, student_dim: int, teacher_dim: int, hidden_dim: int = 2048) -> nn.ModuleList:
    """One independent projector per head."""
    return nn.ModuleList(Projector(student_dim, teacher_dim, hidden_dim) for _ in range(num_heads))
