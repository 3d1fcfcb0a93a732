"""A synthetic token store made on the spot for the benches and the GPU check: random images in an .npz (the
online Mirai-I teacher reads its crops from there) and random codes written through the real StoreWriter, so
`build_run` opens it as any encoded store. Its codes do not come from a tokenizer: only shapes matter here."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mirai_cli.data.sources import open_source
from mirai_cli.data.store import StoreWriter, codes_dtype


def make_token_store(root: str | Path, *, images: int, grid: int, codebook: int, classes: int, image_size: int,
                     seed: int = 0, tokenizer: dict | None = None) -> Path:
    """A complete one-crop store of `images` entries (grid x grid codes < codebook, labels < classes) at
    root/store, its source images at root/images.npz. Returns the store's path. tokenizer: {"path", "sha256"}
    of a tokenizer to record as the store's (sampling checks that a run's tokenizer is the store's)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = np.arange(images) % classes
    npz = root / "images.npz"
    np.savez(npz, images=rng.integers(0, 256, (images, image_size, image_size, 3), dtype=np.uint8), labels=labels,
             class_names=np.array([f"c{i}" for i in range(classes)]))
    src = open_source(str(npz))
    head = {
        "tokenizer_path": (tokenizer or {}).get("path"), "tokenizer_checkpoint": (tokenizer or {}).get("path"),
        "tokenizer_sha256": (tokenizer or {}).get("sha256", "synthetic"),
        "source": src.to_manifest() | {"limit": None}, "class_names": list(src.class_names),
        "image_size": image_size, "crop_mode": "none", "crop_ratio": 1.0, "num_crops": 1, "crop_names": ["center"],
        "grid": [grid, grid], "codebook_size": codebook, "dtype": codes_dtype(codebook).name,
        "shard_size": images, "num_shards": 1, "count_planned": images,
    }
    writer = StoreWriter(root / "store", head)
    writer.open()
    codes = rng.integers(0, codebook, (images, 1, grid * grid))
    writer.write_shard(0, codes, labels, np.arange(images), [])
    writer.finish()
    return root / "store"
