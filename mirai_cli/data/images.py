"""Image files: which files are images, reading one (any PIL mode -> uint8 RGB), and image grids written as PNG
(reconstructions, store checks). The folder readers of training data and of evaluation both use these."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mirai_cli.errors import MiraiError
from mirai_cli.files.atomic import atomic_path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".jpe")


class UnreadableImage(MiraiError):
    """One image file that cannot be decoded. Encoding skips it (and counts it) unless strict."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot read image {path}: {reason}")
        self.path = path
        self.reason = reason


def image_files(folder: str | Path) -> list[str]:
    """The image files under `folder` (subfolders too), sorted; hidden names (.x.jpg, macOS ._x.jpg) left out."""
    return sorted(str(p) for p in Path(folder).rglob("*")
                  if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file())


def read_image_file(path: str) -> np.ndarray:
    """uint8 (H, W, 3) of one image file, decoded now so a truncated file fails here; UnreadableImage if not."""
    try:
        with Image.open(path) as im:
            im.load()
            return pil_to_rgb(im, path)
    except MiraiError as e:
        raise UnreadableImage(path, str(e).removeprefix(f"{path}: ")) from e
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... for bad files
        raise UnreadableImage(path, str(e) or type(e).__name__) from e


def pil_to_rgb(im: Image.Image, where: str) -> np.ndarray:
    """uint8 (H, W, 3) from a decoded image of any mode. PIL's own convert("RGB") clips high-bit-depth modes
    (a 16-bit PNG comes out almost all white), so those are scaled to 8 bits here; 32-bit float images in
    [0, 1] or [0, 255] are scaled, others refused. Alpha is dropped, as every ImageNet pipeline does."""
    mode = im.mode
    if mode == "I" or mode.startswith("I;16"):
        arr = np.asarray(im).astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise MiraiError(f"{where}: {mode} image with values {arr.min()}..{arr.max()} is outside the 16-bit "
                             "range; convert it to 8-bit RGB")
        gray = ((arr * 255 + 32767) // 65535).astype(np.uint8)  # 0..65535 -> 0..255, rounded
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        top = float(arr.max()) if arr.size else 0.0
        if not np.isfinite(arr).all() or (arr.size and arr.min() < 0) or top > 255:
            raise MiraiError(f"{where}: 32-bit float image with values outside [0, 1] and [0, 255]; convert it to "
                             "8-bit RGB")
        scale = 255.0 if top <= 1.0 else 1.0
        gray = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "La":  # premultiplied L + alpha: PIL converts it only through LA
        im = im.convert("LA")
    try:
        return np.asarray(im.convert("RGB"))
    except ValueError as e:
        raise MiraiError(f"{where}: image mode {mode} cannot be converted to RGB ({e}); convert it to 8-bit RGB") from e


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
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
    return Path(path)
