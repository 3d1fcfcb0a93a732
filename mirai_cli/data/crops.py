"""Preprocessing as LlamaGen's code extraction (docs/method.md, "Tokenizer"): ADM-style resize + centre crop, then
ten-crop of a 1.1x crop, flip-only, or none."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from mirai_cli.errors import MiraiError

CROP_MODES = {"tencrop": 10, "flip": 2, "none": 1}
CROP_NAMES = {
    "tencrop": ["top_left", "top_right", "bottom_left", "bottom_right", "center",
                "top_left_flip", "top_right_flip", "bottom_left_flip", "bottom_right_flip", "center_flip"],
    "flip": ["center", "center_flip"],
    "none": ["center"],
}
TENCROP_RANGE = 1.1


def num_crops(mode: str) -> int:
    if mode not in CROP_MODES:
        raise MiraiError(f"unknown crop mode '{mode}': use one of {', '.join(CROP_MODES)}")
    return CROP_MODES[mode]


def center_crop_arr(image: np.ndarray, size: int) -> np.ndarray:
    """ADM's centre crop: halve with a box filter while the short side is >= 2x size, bicubic-resize the short
    side to `size` (this also upsamples small images), then cut the centre square."""
    pil = Image.fromarray(image)
    while min(pil.size) >= 2 * size:
        pil = pil.resize(tuple(x // 2 for x in pil.size), resample=Image.BOX)
    scale = size / min(pil.size)
    pil = pil.resize(tuple(round(x * scale) for x in pil.size), resample=Image.BICUBIC)
    arr = np.asarray(pil)
    top = (arr.shape[0] - size) // 2
    left = (arr.shape[1] - size) // 2
    return arr[top: top + size, left: left + size]


def _five_crops(arr: np.ndarray, size: int) -> list[np.ndarray]:
    h, w = arr.shape[:2]
    # centre offset rounded like torchvision's center_crop (Python round: half to even)
    ct, cl = round((h - size) / 2.0), round((w - size) / 2.0)
    return [arr[:size, :size], arr[:size, w - size:], arr[h - size:, :size], arr[h - size:, w - size:],
            arr[ct: ct + size, cl: cl + size]]


def make_crops(image: np.ndarray, image_size: int, mode: str, crop_ratio: float = TENCROP_RANGE) -> np.ndarray:
    """uint8 H,W,3 -> uint8 [n_crops, S, S, 3] in the order of CROP_NAMES[mode]. `crop_ratio` (ten-crop only):
    the centre crop is int(image_size * crop_ratio) px before the ten crops are cut."""
    n = num_crops(mode)
    if mode == "tencrop":
        big = center_crop_arr(image, int(image_size * crop_ratio))
        crops = _five_crops(big, image_size) + _five_crops(big[:, ::-1], image_size)
    else:
        base = center_crop_arr(image, image_size)
        crops = [base, base[:, ::-1]][:n]
    return np.ascontiguousarray(np.stack(crops))


def make_crop(image: np.ndarray, image_size: int, mode: str, crop_id: int, crop_ratio: float = TENCROP_RANGE
              ) -> np.ndarray:
    """Crop `crop_id` of make_crops(image, ...) alone (the same pixels, without cutting the others):
    uint8 [S, S, 3]."""
    n = num_crops(mode)
    if not 0 <= crop_id < n:
        raise MiraiError(f"crop {crop_id} does not exist in crop mode '{mode}' ({n} crops)")
    if mode == "tencrop":
        big = center_crop_arr(image, int(image_size * crop_ratio))
        crop = _five_crops(big if crop_id < 5 else big[:, ::-1], image_size)[crop_id % 5]
    else:
        base = center_crop_arr(image, image_size)
        crop = base if crop_id == 0 else base[:, ::-1]
    return np.ascontiguousarray(crop)


def store_crops(image: np.ndarray, manifest: dict) -> np.ndarray:
    """The crops of one source image exactly as the token store with this manifest encoded them."""
    return make_crops(image, int(manifest["image_size"]), str(manifest["crop_mode"]),
                      float(manifest.get("crop_ratio", TENCROP_RANGE)))


def to_model_input(crops: np.ndarray, device: torch.device | None = None) -> torch.Tensor:
    """uint8 [B, S, S, 3] -> float tensor [B, 3, S, S] in [-1, 1] on `device` (default: the CPU). The uint8
    pixels are moved and converted there: a quarter of the bytes of float crops cross to an accelerator, and
    the values are the same (one IEEE division and subtraction on either side)."""
    x = torch.from_numpy(np.ascontiguousarray(crops))
    if device is not None:
        x = x.to(device)
    return x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float tensor [B, 3, S, S] in [-1, 1] -> uint8 [B, S, S, 3] (clamped, rounded)."""
    x = images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to("cpu")
    return x.permute(0, 2, 3, 1).to(torch.uint8).numpy()
