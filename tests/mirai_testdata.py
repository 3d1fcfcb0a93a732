"""Tiny real data for the tests: class images, and overrides that shrink the tiny preset to seconds.
(A uniquely named module: every test folder has its own conftest.py.)"""

import numpy as np


def make_class_images(n: int, size: int = 16, num_classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Small RGB images whose content depends on the class (a bright square whose position and colour
    follow the label, on noise), so a generator has something real to learn."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    images = rng.integers(0, 60, size=(n, size, size, 3)).astype(np.uint8)
    half = size // 2
    for i, label in enumerate(labels):
        r, c = divmod(int(label) % 4, 2)
        colour = np.array([200, 80 + 40 * (label % 3), 255 - 50 * (label % 4)], dtype=np.uint8)
        images[i, r * half : (r + 1) * half, c * half : (c + 1) * half] = colour
    return images, labels.astype(np.int64)


def tiny_overrides(store_info: dict, run_dir, **extra) -> list[str]:
    """--set overrides that turn the `tiny` preset into a seconds-long CPU run on `tiny_store`."""
    sets = {
        "data.store": str(store_info["store"]), "data.image_size": 16, "tokenizer.ch_mult": [1, 2],
        "tokenizer.codebook_size": store_info["codebook"], "tokenizer.codebook_dim": 4, "tokenizer.ch": 16,
        "tokenizer.z_channels": 8, "model.layers": 2, "model.dim": 64, "model.heads": 2,
        "model.num_classes": store_info["classes"], "foresight.depth": 1, "foresight.projector_dim": 64,
        "foresight.warmup": 0, "eval.resize": 16, "data.val_images": 0,
        "train.global_batch_size": 16, "train.duration": 6, "train.ckpt_every": 3, "train.log_every": 1,
        "train.lr_warmup": 0, "train.precision": "fp32", "train.run_dir": str(run_dir), "train.eval_every": 3,
    }
    sets.update(extra)
    out = []
    for key, value in sets.items():
        text = str(value).lower() if isinstance(value, bool) else (f'"{value}"' if isinstance(value, str) else str(value))
        out.append(f"{key}={text}")
    return out


def write_store_info(store_info: dict, path) -> str:
    """The tiny_store fixture's dict as JSON, for a script run under torchrun (read_store_info reads it)."""
    import json

    with open(path, "w") as f:
        json.dump({k: str(v) if k in PATH_KEYS else v for k, v in store_info.items()}, f)
    return str(path)


def read_store_info(path) -> dict:
    import json
    from pathlib import Path

    with open(path) as f:
        return {k: Path(v) if k in PATH_KEYS else v for k, v in json.load(f).items()}


PATH_KEYS = ("root", "npz", "tokenizer", "store")
