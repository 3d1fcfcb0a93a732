"""Projector heads rho_k (docs/method.md, Foresight): one MLP per head, shared by all positions,
Linear(d, hidden) - SiLU - Linear(hidden, hidden) - SiLU - Linear(hidden, teacher_dim), no norm on the
student side, every weight N(0, 0.02) and every bias zero (the paper's code).

`FusedProjectors` holds the K heads' first layers as one Linear(d, K*hidden) (one parameter, the checkpoint
layout) and runs each head on its own positions only: head k selects its rows of the student features first,
then applies its slice of the first layer and its rest. No head computes, copies or back-propagates another
head's hidden units (running the fused layer on every position and selecting afterwards made the Mirai-E step
slower than the paper code's: each head's backward zero-filled and scattered into all K heads' hidden units).
Mathematically K independent `Projector`s; checkpoints with per-head keys (`projectors.<k>.net.<j>.*`, ours
before the fusion, or `projectors.<k>.<j>.*`, the paper's code) are converted on load.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

INIT_STD = 0.02  # the paper's code: every projector weight N(0, 0.02), every bias zero
PER_HEAD_KEY = re.compile(r"^projectors\.(\d+)\.(?:net\.)?([024])\.(weight|bias)$")


def init_linear(layer: nn.Linear, std: float = INIT_STD) -> None:
    nn.init.normal_(layer.weight, mean=0.0, std=std)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def _mlp_rest(hidden_dim: int, teacher_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, teacher_dim))


class Projector(nn.Module):
    """One head's MLP on its own (the per-head layout of the paper's code)."""

    def __init__(self, student_dim: int, teacher_dim: int, hidden_dim: int = 2048) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(student_dim, hidden_dim), nn.SiLU(), *_mlp_rest(hidden_dim, teacher_dim))
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                init_linear(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FusedProjectors(nn.Module):
    """K projector heads whose first layers are stored as one. forward(x [B, U, d], rows) -> K predictions,
    head k's [B, len(rows[k]), teacher_dim] at the positions rows[k] of x."""

    def __init__(self, num_heads: int, student_dim: int, teacher_dim: int, hidden_dim: int = 2048) -> None:
        super().__init__()
        self.num_heads, self.hidden_dim = int(num_heads), int(hidden_dim)
        self.first = nn.Linear(student_dim, num_heads * hidden_dim)
        self.rest = nn.ModuleList(_mlp_rest(hidden_dim, teacher_dim) for _ in range(num_heads))
        for layer in self.modules():
            if isinstance(layer, nn.Linear):
                init_linear(layer)
        self._register_load_state_dict_pre_hook(self._from_per_head)

    def __len__(self) -> int:
        return self.num_heads

    def forward(self, x: torch.Tensor, rows: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        # Select first (d wide), then project: each head's hidden units are made for its own rows only.
        return [self.head(k, x.index_select(1, r)) for k, r in enumerate(rows)]

    def head(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """Head k alone on x [..., d] (what a per-head Projector k computes)."""
        h = self.hidden_dim
        w, b = self.first.weight[k * h:(k + 1) * h], self.first.bias[k * h:(k + 1) * h]
        return self.rest[k](F.silu(F.linear(x, w, b)))

    def _from_per_head(self, state: dict[str, Any], prefix: str, *args: Any) -> None:
        """Per-head keys under `prefix` -> this layout: first layers stacked in head order, the rest renamed."""
        found: dict[tuple[int, str, str], torch.Tensor] = {}
        for key in [k for k in state if k.startswith(prefix)]:
            m = PER_HEAD_KEY.match("projectors." + key[len(prefix):])
            if m:
                found[(int(m[1]), m[2], m[3])] = state.pop(key)
        if not found:
            return
        heads = sorted({k for k, _, _ in found})
        for leaf in ("weight", "bias"):
            if all((k, "0", leaf) in found for k in heads):
                state[f"{prefix}first.{leaf}"] = torch.cat([found[(k, "0", leaf)] for k in heads])
        for (k, layer, leaf), value in found.items():
            if layer != "0":
                state[f"{prefix}rest.{k}.{int(layer) - 2}.{leaf}"] = value
