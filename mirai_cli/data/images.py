"""Image grids written as PNG (reconstructions, store checks)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image


def image_grid(images: np.ndarray, nrow: int = 8, pad: int = 2) -> np.ndarray:
    """uint8 [N, H, W, 3] -> one uint8 image with `nrow` images per row and `pad` px white gaps."""
    n, h, w, c = images.shape
    ncol = min(nrow, n)
    rows = (n + ncol - 1) // ncol
    out = np.full((rows * (h + pad) + pad, ncol * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        out[y: y + h, x: x + w] = images[i]
    return out


def save_png(array: np.ndarray, path: str | Path) -> Path:
    """Atomic PNG write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    Image.fromarray(array).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path
