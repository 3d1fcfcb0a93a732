"""Images -> token store: batched, sharded, resumable (see mirai_cli/data/store.py for the layout)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mirai_cli.data.crops import CROP_NAMES, TENCROP_RANGE, make_crops, num_crops, to_model_input
from mirai_cli.data.sources import ImageSource, UnreadableImage, open_source
from mirai_cli.data.store import StoreWriter, codes_dtype, shard_name
from mirai_cli.errors import MiraiError
from mirai_cli.fileio import sha256_file
from mirai_cli.progress import make_progress, warn
from mirai_cli.runtime import autocast, resolve_device, resolve_precision
from mirai_cli.tokenizer.checkpoint import load_tokenizer_with_extra, resolve_tokenizer_path
from mirai_cli.tokenizer.config import VQConfig
from mirai_cli.tokenizer.vq_model import VQModel

Batch = tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]  # crops, labels, indices, skipped


def _batches(src: ImageSource, start: int, stop: int, batch_size: int, image_size: int, crop_mode: str,
             crop_ratio: float, strict: bool, log: Callable[[str], None]) -> Iterator[Batch]:
    """Crops of source entries [start, stop) in batches of `batch_size` images; unreadable files are
    reported and skipped (or fatal when strict)."""
    crops, labels, index, skipped = [], [], [], []
    for i in range(start, stop):
        try:
            img, label = src.read(i)
        except UnreadableImage as e:
            if strict:
                raise MiraiError(f"{e} (--strict stops here; finished shards are kept)") from e
            log(f"skipped {e.path}: {e.reason}")
            skipped.append({"index": i, "path": e.path, "reason": e.reason})
            continue
        crops.append(make_crops(img, image_size, crop_mode, crop_ratio))
        labels.append(label)
        index.append(i)
        if len(crops) == batch_size:
            yield np.stack(crops), np.asarray(labels), np.asarray(index), skipped
            crops, labels, index, skipped = [], [], [], []
    if crops or skipped:
        empty = np.zeros((0, num_crops(crop_mode), image_size, image_size, 3), np.uint8)
        yield (np.stack(crops) if crops else empty), np.asarray(labels, np.int64), np.asarray(index, np.int64), skipped


def _prefetch(it: Iterator[Batch], depth: int = 2) -> Iterator[Batch]:
    """Run the image decoding of the next batches in a thread while the model encodes (PIL releases the GIL)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in it:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - any error, even an interrupt, goes to the consumer
            q.put(e)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(timeout=0.05)


@torch.no_grad()
def encode_crops(model: VQModel, crops: np.ndarray, device: torch.device, precision: str) -> np.ndarray:
    """uint8 [B, crops, S, S, 3] -> int64 codes [B, crops, h*w]."""
    b, n = crops.shape[:2]
    x = to_model_input(crops.reshape((b * n,) + crops.shape[2:])).to(device)
    with autocast(device, precision):
        codes = model.encode_to_codes(x)
    return codes.view(b, n, -1).cpu().numpy()


def encode_store(
    tokenizer: str | Path,
    source: str,
    out: str | Path,
    *,
    image_size: int | None = None,
    crop_mode: str = "tencrop",
    crop_ratio: float = TENCROP_RANGE,
    split: str = "train",
    batch_size: int = 32,
    shard_size: int = 4096,
    precision: str = "fp32",
    device: str = "auto",
    strict: bool = False,
    stated: VQConfig | None = None,
    limit: int | None = None,
    extra: dict[str, Any] | None = None,
    show_progress: bool = True,
    log: Callable[[str], None] = warn,
    on_shard_done: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Encode every image of `source` (crops per `crop_mode`) with the tokenizer checkpoint into a token store
    at `out`. Continues an unfinished store; returns the final manifest. `image_size` defaults to the size the
    tokenizer records (ours do). `batch_size` counts images (each gives 1, 2 or 10 crops). precision: "fp32"
    (default, as LlamaGen extracts codes) or "bf16" autocast (faster on GPUs, flips some codes). stated: the
    user's tokenizer config, for a checkpoint that records none (see `infer_config`). `extra` (e.g. the resolved
    preset) is stored in the manifest as is."""
    out = Path(out)
    n_crops = num_crops(crop_mode)
    if batch_size < 1 or shard_size < 1:
        raise MiraiError(f"batch_size and shard_size must be >= 1 (got {batch_size}, {shard_size})")
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    tok_file = resolve_tokenizer_path(tokenizer)
    sha = sha256_file(tok_file)
    model, cfg, tok_extra = load_tokenizer_with_extra(tok_file, device=dev, stated=stated)
    image_size = image_size or tok_extra.get("image_size")
    if not image_size:
        raise MiraiError(f"{tok_file} does not record the image size it was trained at: give it, e.g. "
                         "--set data.image_size=256")
    image_size = int(image_size)
    grid = cfg.grid(image_size)
    src = open_source(source, split)
    count = len(src) if limit is None else min(len(src), int(limit))
    if count == 0:
        raise MiraiError(f"data source {source} holds no images")
    num_shards = (count + shard_size - 1) // shard_size
    head = {
        "tokenizer_path": str(tok_file), "tokenizer_checkpoint": str(tok_file), "tokenizer_sha256": sha,
        "tokenizer_config": cfg.to_dict(), "source": src.to_manifest() | {"limit": limit},
        "class_names": list(src.class_names), "image_size": image_size, "crop_mode": crop_mode,
        "crop_ratio": crop_ratio, "num_crops": n_crops, "crop_names": CROP_NAMES[crop_mode], "grid": list(grid),
        "codebook_size": cfg.codebook_size, "dtype": codes_dtype(cfg.codebook_size).name,
        "shard_size": shard_size, "num_shards": num_shards, "count_planned": count, "precision": prec,
        "extra": extra or {},
    }
    writer = StoreWriter(out, head)
    done, final = writer.open()
    if final is not None:
        log(f"token store {out} is already complete ({final['count']} images): nothing to do")
        return final
    todo = [k for k in range(num_shards) if k not in done]
    with make_progress(show_progress) as progress:
        task = progress.add_task("encode", total=count, status=f"{len(done)}/{num_shards} shards done")
        progress.update(task, completed=sum(min(shard_size, count - k * shard_size) for k in done))
        for k in todo:
            start, stop = k * shard_size, min((k + 1) * shard_size, count)
            codes, labels, index, skipped = [], [], [], []
            for crops, lab, idx, skip in _prefetch(_batches(src, start, stop, batch_size, image_size, crop_mode,
                                                            crop_ratio, strict, log)):
                if len(crops):
                    codes.append(encode_crops(model, crops, dev, prec))
                labels.append(lab)
                index.append(idx)
                skipped += skip
                progress.advance(task, len(lab) + len(skip))
            hw = grid[0] * grid[1]
            codes_arr = np.concatenate(codes) if codes else np.zeros((0, n_crops, hw), np.int64)
            writer.write_shard(k, codes_arr, np.concatenate(labels), np.concatenate(index), skipped)
            progress.update(task, status=f"shard {shard_name(k)} written")
            if on_shard_done is not None:
                on_shard_done(k)
    manifest = writer.finish()
    if manifest["skipped_count"]:
        log(f"{manifest['skipped_count']} unreadable image(s) skipped (listed under 'skipped' in "
            f"{out / 'manifest.json'})")
    if manifest["count"] == 0:
        raise MiraiError(f"no image of {source} could be read; the store at {out} is empty")
    return manifest
