"""Projector heads rho_k (docs/method.md, "Foresight"): one MLP per head, shared by all positions."""

from __future__ import annotations

import torch
from torch import nn


class Projector(nn.Module):
    """Linear(d, hidden) - SiLU - Linear(hidden, hidden) - SiLU - Linear(hidden, teacher_dim).
    No norm on the student side (the paper's choice)."""

    def __init__(self, student_dim: int, teacher_dim: int, hidden_dim: int = 2048) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(student_dim, hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, teacher_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_projectors(num_heads: int, student_dim: int, teacher_dim: int, hidden_dim: int = 2048) -> nn.ModuleList:
    """One independent projector per head."""
    return nn.ModuleList(Projector(student_dim, teacher_dim, hidden_dim) for _ in range(num_heads))
