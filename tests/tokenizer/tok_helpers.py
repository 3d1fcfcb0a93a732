"""Helpers of the tokenizer tests: tiny configs and image sets."""

import numpy as np

from mirai_cli.tokenizer.config import VQConfig


def tiny_config(**over) -> VQConfig:
    base = {"ch": 16, "ch_mult": (1, 2), "num_res_blocks": 1, "decoder_num_res_blocks": 1, "z_channels": 8,
                "codebook_size": 64, "codebook_dim": 4, "norm_groups": 8, "usage_buffer": 1024}
    return VQConfig(**{**base, **over})


def shapes_images(n: int, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Coloured squares on noise; the class sets the square's corner."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    imgs = rng.integers(0, 80, (n, size, size, 3), dtype=np.uint8)
    h = size // 2
    for i, c in enumerate(labels):
        r, k = divmod(int(c), 2)
        imgs[i, r * h:(r + 1) * h, k * h:(k + 1) * h] = (40 + 70 * c, 200, 255 - 60 * c)
    return imgs, labels
