"""2D rotary position embedding over the token grid, laid out as LlamaGen lays it out.

Each head's dimension is split into pairs (x[2i], x[2i+1]) that are rotated as complex numbers. The first half of
the pairs rotates with the cell's row index, the second half with its column index; both halves use the
frequencies base ** (-4k / head_dim), k = 0 .. head_dim/4 - 1. Row index p of the table is sequence position p:
p = 0 is the class position, p >= 1 holds grid cell p - 1 (raster order).
"""

from __future__ import annotations

import torch


def rope_table(
    grid: tuple[int, int], head_dim: int, base: float = 10000.0, class_mode: str = "zero"
) -> torch.Tensor:
    """cos and sin per position and pair: float32 [1 + h*w, head_dim // 2, 2] (last axis: cos, sin)."""
    h, w = grid
    quarter = head_dim // 4
    # Built on the CPU explicitly, so a model constructed under torch.device("meta") still gets real values.
    freqs = base ** (-torch.arange(quarter, dtype=torch.float64, device="cpu") * 4.0 / head_dim)
    cells = torch.arange(h * w, device="cpu")
    rows = (cells // w).to(torch.float64)
    cols = (cells % w).to(torch.float64)
    angles = torch.cat([rows[:, None] * freqs, cols[:, None] * freqs], dim=1)  # [h*w, head_dim // 2]
    cells_table = torch.stack([angles.cos(), angles.sin()], dim=-1)
    cls_row = torch.zeros(1, head_dim // 2, 2, dtype=torch.float64, device="cpu")
    if class_mode == "identity":
        cls_row[..., 0] = 1.0
    return torch.cat([cls_row, cells_table]).float()


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, T, ..., head_dim] (e.g. [B, T, heads, head_dim], or queries and keys together as
    [B, T, 2, heads, head_dim]) by table [T, head_dim // 2, 2]; computed in float32, returned in x's dtype."""
    pairs = x.float().unflatten(-1, (-1, 2))
    re, im = pairs[..., 0], pairs[..., 1]
    shape = (1, table.shape[0]) + (1,) * (x.dim() - 3) + (table.shape[1],)
    cos = table[..., 0].reshape(shape)
    sin = table[..., 1].reshape(shape)
    out = torch.stack([re * cos - im * sin, im * cos + re * sin], dim=-1)
    return out.flatten(-2).type_as(x)
