"""The sample folder: PNG names, the manifest that says which run the images belong to, the .npz and grid.

    out/
      sample_manifest.json   checkpoint + tokenizer hashes and every setting that changes the images
      images/000123_c0042.png  sample 123, class 42
      samples.npz            arr_0 (N, H, W, 3) uint8 in index order (the ADM evaluator's layout), labels (N,)
      grid.png               a quick look: up to 64 samples spread over the plan
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mirai_cli.data.images import image_grid, save_png
from mirai_cli.errors import MiraiError
from mirai_cli.files.atomic import remove_temp_files, write_json
from mirai_cli.files.locks import Inputs, acquire

MANIFEST = "sample_manifest.json"
IMAGES = "images"
NPZ = "samples.npz"
GRID = "grid.png"
FORMAT = "mirai-samples-1"
NAME_RE = re.compile(r"^(\d{6,})_c(\d{4,})\.png$")


def image_name(index: int, label: int) -> str:
    return f"{index:06d}_c{label:04d}.png"


def image_path(out_dir: Path, index: int, label: int) -> Path:
    return out_dir / IMAGES / image_name(index, label)


def prepare_output(out_dir: Path, identity: dict[str, Any], info: dict[str, Any], inputs: Inputs) -> bool:
    """Check that out_dir is empty of samples or holds this very run's samples, and is none of `inputs` nor inside
    one; write the manifest. Returns True when resuming an earlier run. Raises MiraiError (nothing touched) for
    another run's folder. The folder stays locked by this process until it ends or locks.release(out_dir)."""
    acquire(out_dir, inputs)
    remove_temp_files(out_dir)  # scratch of a killed job (the npz being assembled, half-written PNGs)
    remove_temp_files(out_dir / IMAGES)
    manifest_path = out_dir / MANIFEST
    if manifest_path.is_file():
        try:
            old = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise MiraiError(f"cannot read {manifest_path}: {e}; delete it or choose another output folder") from e
        old_id = old.get("identity", {})
        for key in sorted(set(old_id) | set(identity)):
            if old_id.get(key) != identity.get(key):
                raise MiraiError(
                    f"output folder {out_dir} holds samples of another run ({key}: {_short(old_id.get(key))} there, "
                    f"{_short(identity.get(key))} now): choose another output folder or delete it"
                )
        return True
    found = _foreign_samples(out_dir)
    if found:
        raise MiraiError(
            f"output folder {out_dir} already holds images ({found}) but no {MANIFEST}: they belong to another run; "
            "choose another output folder or delete them"
        )
    write_json(manifest_path, {"format": FORMAT, "identity": identity, **info})
    return False


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _foreign_samples(out_dir: Path) -> str | None:
    for pattern in (f"{IMAGES}/*.png", "*.png", "*.npz"):
        hit = next(iter(sorted(out_dir.glob(pattern))), None)
        if hit is not None:
            return str(hit.relative_to(out_dir))
    return None


def existing_indices(out_dir: Path, labels: np.ndarray) -> np.ndarray:
    """Bool [N]: sample i is on disk under its expected name (a finished, atomically written PNG)."""
    done = np.zeros(len(labels), dtype=bool)
    folder = out_dir / IMAGES
    if not folder.is_dir():
        return done
    for entry in os.scandir(folder):
        m = NAME_RE.match(entry.name)
        if m:
            i, c = int(m.group(1)), int(m.group(2))
            if i < len(labels) and labels[i] == c:
                done[i] = True
    return done


def save_images(out_dir: Path, indices: np.ndarray, labels: np.ndarray, images: np.ndarray) -> None:
    """images uint8 [n, H, W, 3] for samples `indices` (atomic writes: a crash leaves no half PNG behind)."""
    for i, img in zip(indices.tolist(), images):
        save_png(img, image_path(out_dir, i, int(labels[i])))


def read_image(out_dir: Path, index: int, label: int) -> np.ndarray:
    with Image.open(image_path(out_dir, index, label)) as im:
        return np.asarray(im.convert("RGB"))


def write_npz(out_dir: Path, labels: np.ndarray, shape: tuple[int, int]) -> Path:
    """samples.npz with arr_0 (N, H, W, 3) uint8 and labels (N,), built from the PNGs through a memory-mapped
    scratch array (50,000 images at 256 px are ~10 GB: never all in memory) and written atomically."""
    n = len(labels)
    h, w = shape
    scratch = out_dir / f".arr_0.tmp{os.getpid()}.npy"
    tmp = out_dir / f".{NPZ}.tmp{os.getpid()}.npz"
    try:
        arr = np.lib.format.open_memmap(scratch, mode="w+", dtype=np.uint8, shape=(n, h, w, 3))
        for i in range(n):
            arr[i] = read_image(out_dir, i, int(labels[i]))
        arr.flush()
        np.savez(tmp, arr_0=arr, labels=labels.astype(np.int64))
        del arr
        os.replace(tmp, out_dir / NPZ)
    finally:
        for p in (scratch, tmp):
            if p.exists():
                p.unlink()
    return out_dir / NPZ


def npz_is_current(out_dir: Path, n: int) -> bool:
    """The .npz exists and is newer than every PNG (so no image changed since it was written)."""
    npz = out_dir / NPZ
    if not npz.is_file():
        return False
    newest = max((e.stat().st_mtime for e in os.scandir(out_dir / IMAGES) if e.name.endswith(".png")), default=0.0)
    return npz.stat().st_mtime >= newest


def write_grid(out_dir: Path, labels: np.ndarray, max_images: int = 64) -> Path:
    """Up to max_images samples spread evenly over the plan (so a class-by-class plan shows many classes)."""
    n = len(labels)
    picks = np.unique(np.linspace(0, n - 1, min(n, max_images)).round().astype(int))
    images = np.stack([read_image(out_dir, int(i), int(labels[i])) for i in picks])
    return save_png(image_grid(images, nrow=8), out_dir / GRID)
