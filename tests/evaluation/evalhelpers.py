"""Small image sets for evaluation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def images(n: int, size: int = 16, seed: int = 0, style: str = "uniform") -> np.ndarray:
    """uint8 (n, size, size, 3). 'uniform' noise, or 'dark' (squared noise: another distribution)."""
    rng = np.random.default_rng(seed)
    if style == "uniform":
        return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return (rng.random((n, size, size, 3)) ** 2 * 255).astype(np.uint8)


def write_folder(folder: Path, arr: np.ndarray, ext: str = "png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(arr):
        Image.fromarray(img).save(folder / f"{i:05d}.{ext}")
    return folder


def write_npz(path: Path, arr: np.ndarray, **extra) -> Path:
    np.savez(path, arr_0=arr, **extra)
    return path
