"""Pixels in, token-grid features out: the resampling shared by every frozen encoder."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def uint8_to_unit(crops: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [B, S, S, 3] (what make_crops returns) -> float [B, 3, S, S] in [0, 1]."""
    x = torch.as_tensor(np.ascontiguousarray(crops)) if isinstance(crops, np.ndarray) else crops
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def prepare_pixels(
    pixels: torch.Tensor, size: tuple[int, int], mean: torch.Tensor | Sequence[float],
    std: torch.Tensor | Sequence[float], resize: str = "bicubic",
) -> torch.Tensor:
    """[B, 3, H, W] in [0, 1] -> the encoder's fp32 input at `size`.
    "bicubic" (the paper's code): normalise with the encoder's mean/std, then plain bicubic F.interpolate
    (no antialias, no clamp). "bicubic-antialias": bicubic resize antialiased when shrinking and clamped to
    [0, 1] (as a PIL resize of uint8 would be), then normalise. mean/std: 3 values; in a training step give
    fp32 tensors already on the pixels' device (FrozenEncoder's buffers): built from a list, they would be
    a host-to-device copy per call."""
    x = pixels.float()
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(3, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(3, 1, 1)
    same = tuple(x.shape[-2:]) == tuple(size)
    if resize == "bicubic":
        x = (x - m) / s
        return x if same else F.interpolate(x, size=size, mode="bicubic", align_corners=False)
    if resize != "bicubic-antialias":
        raise ValueError(f"unknown resize {resize!r}")
    if not same:
        shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=shrink).clamp_(0.0, 1.0)
    return (x - m) / s


def features_to_grid(fmap: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """[B, D, fh, fw] -> [B, h*w, D] on the token grid: as is when it already fits, area-averaged when the
    map is finer, bilinear when it is coarser."""
    h, w = grid
    if tuple(fmap.shape[-2:]) != (h, w):
        if fmap.shape[-2] >= h and fmap.shape[-1] >= w:
            fmap = F.interpolate(fmap.float(), size=(h, w), mode="area")
        else:
            fmap = F.interpolate(fmap.float(), size=(h, w), mode="bilinear", align_corners=False)
    return fmap.flatten(2).transpose(1, 2)
