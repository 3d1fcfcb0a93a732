"""Images -> token store: batched, sharded, resumable (see mirai_cli/data/store.py for the layout)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mirai_cli.data.crops import CROP_NAMES, TENCROP_RANGE, make_crops, num_crops, to_model_input
from mirai_cli.data.images import UnreadableImage
from mirai_cli.data.loading import decoded_batches
from mirai_cli.data.sources import ImageSource, open_source
from mirai_cli.data.store import MANIFEST, StoreWriter, codes_dtype, read_manifest, shard_name
from mirai_cli.errors import MiraiError
from mirai_cli.files.locks import folder_lock
from mirai_cli.files.manifest import manifest
from mirai_cli.runtime.device import autocast, resolve_precision
from mirai_cli.runtime.distributed import DistEnv, barrier, broadcast_object, job_env
from mirai_cli.runtime.progress import make_progress, warn
from mirai_cli.tokenizer.checkpoint import (
    load_tokenizer_with_extra,
    resolve_tokenizer_path,
    tokenizer_identity,
)
from mirai_cli.tokenizer.config import VQConfig
from mirai_cli.tokenizer.vq_model import VQModel

Batch = tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]  # crops, labels, indices, skipped


class ShardImages(torch.utils.data.Dataset):
    """Source entries [start, stop) as crops, decoded wherever the DataLoader runs it (worker processes when
    data.num_workers > 0). An unreadable file becomes a skip record; the main process decides (skip or stop)."""

    def __init__(self, src: ImageSource, start: int, stop: int, image_size: int, crop_mode: str, crop_ratio: float):
        self.src, self.start, self.stop = src, start, stop
        self.image_size, self.crop_mode, self.crop_ratio = image_size, crop_mode, crop_ratio

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, j: int) -> tuple[np.ndarray | None, int, int, dict[str, Any] | None]:
        i = self.start + j
        try:
            img, label = self.src.read(i)
        except UnreadableImage as e:
            return None, -1, i, {"index": i, "path": e.path, "reason": e.reason, "message": str(e)}
        return make_crops(img, self.image_size, self.crop_mode, self.crop_ratio), label, i, None

    def collate(self, items: list) -> Batch:
        ok = [it for it in items if it[3] is None]
        empty = (0, num_crops(self.crop_mode), self.image_size, self.image_size, 3)
        crops = np.stack([it[0] for it in ok]) if ok else np.zeros(empty, np.uint8)
        return (crops, np.asarray([it[1] for it in ok], np.int64), np.asarray([it[2] for it in ok], np.int64),
                [it[3] for it in items if it[3] is not None])


def _batches(images: ShardImages, batch_size: int, workers: int, strict: bool,
             log: Callable[[str], None]) -> Iterator[Batch]:
    """Batches of `batch_size` source entries; unreadable files are reported and skipped (fatal when strict).
    Decoding runs ahead of the model: in `workers` processes, or (0) in one background thread."""
    for crops, labels, index, skipped in decoded_batches(images, batch_size, workers, images.collate):
        for record in skipped:
            message = record.pop("message")
            if strict:
                raise MiraiError(f"{message} (--strict stops here; finished shards are kept)")
            log(f"skipped {record['path']}: {record['reason']}")
        yield crops, labels, index, skipped


@torch.no_grad()
def encode_crops(model: VQModel, crops: np.ndarray, device: torch.device, precision: str) -> np.ndarray:
    """uint8 [B, crops, S, S, 3] -> int64 codes [B, crops, h*w]."""
    b, n = crops.shape[:2]
    x = to_model_input(crops.reshape((b * n,) + crops.shape[2:]), device)
    with autocast(device, precision):
        codes = model.encode_to_codes(x)
    return codes.view(b, n, -1).cpu().numpy()


def _open_store(writer: StoreWriter, env: DistEnv) -> tuple[set[int], dict[str, Any] | None]:
    """Rank 0 creates or checks the store; every rank gets its verdict (finished shards, final manifest)."""
    result: Any = None
    if env.is_main:
        try:
            result = writer.open()
        except MiraiError as e:
            result = str(e)
    result = broadcast_object(result, env)
    if isinstance(result, str):
        raise MiraiError(result)
    return result


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
    num_workers: int = 0,
    env: DistEnv | None = None,
    limit: int | None = None,
    limit_setting: str | None = None,
    extra: dict[str, Any] | None = None,
    show_progress: bool = True,
    log: Callable[[str], None] = warn,
    on_shard_done: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Encode every image of `source` (crops per `crop_mode`) with the tokenizer checkpoint into a token store
    at `out`. Continues an unfinished store; returns the final manifest. `limit`: the first N images (all if fewer),
or exactly N with `limit_setting` (the setting named in the error when the split holds fewer). `image_size` defaults to the size the
    tokenizer records (ours do). `batch_size` counts images (each gives 1, 2 or 10 crops). precision: "fp32"
    (default, as LlamaGen extracts codes) or "bf16" autocast (faster on GPUs, flips some codes). stated: the
    user's tokenizer config, for a checkpoint that records none (see `infer_config`). `extra` (e.g. the resolved
    preset) is stored in the manifest as is. num_workers: image-decoding processes (0: one thread). Under
    torchrun every rank calls it alike: rank r encodes every world-th unfinished shard, rank 0 writes the
    manifest; the store is byte for byte the one a single process writes."""
    out = Path(out)
    num_crops(crop_mode)  # an unknown crop mode fails here, before any loading
    if batch_size < 1 or shard_size < 1:
        raise MiraiError(f"batch_size and shard_size must be >= 1 (got {batch_size}, {shard_size})")
    with job_env(env, device) as env:  # torchrun's group, if any, is left when the job ends
        dev = env.device
        prec = resolve_precision(precision, dev)
        tok_file = resolve_tokenizer_path(tokenizer)
        model, cfg, tok_extra = load_tokenizer_with_extra(tok_file, device=dev, stated=stated)
        image_size = _image_size(image_size or tok_extra.get("image_size"), tok_file, cfg)
        src = open_source(source, split)
        if limit is not None and limit_setting is not None and int(limit) > len(src):  # an exact count: never capped
            raise MiraiError(f"{limit_setting} = {limit}, but split {split!r} of {source} holds only {len(src)} images: "
                             f"set {limit_setting} to at most {len(src)}")
        count = len(src) if limit is None else min(len(src), int(limit))
        if count == 0:
            raise MiraiError(f"data source {source} holds no images")
        head = _store_head(tok_file, tokenizer_identity(tok_file, model, cfg), cfg, src, count, limit, prec, extra,
                           image_size=image_size, crop_mode=crop_mode, crop_ratio=crop_ratio, shard_size=shard_size,
                           batch_size=batch_size)
        args = (StoreWriter(out, head), src, model, dev, prec, env, num_workers, strict, show_progress, log, on_shard_done)
        complete = (out / MANIFEST).is_file() and read_manifest(out).get("status") == "complete"
        if complete or not env.is_main:  # a complete store is only checked (it may be read-only); rank 0 holds the lock
            return _fill_store(*args)
        with folder_lock(out, {"data.source": source, "tokenizer": tokenizer}):  # one job writes a store at a time
            return _fill_store(*args)


def _image_size(size: int | None, tok_file: Path, cfg: VQConfig) -> int:
    """The size to encode at (given, or the one the tokenizer records), checked to tile into the tokenizer's grid."""
    if not size:
        raise MiraiError(f"{tok_file} does not record the image size it was trained at: give it, e.g. "
                         "--set data.image_size=256")
    cfg.grid(int(size))
    return int(size)


def _store_head(tok_file: Path, identity: Any, cfg: VQConfig, src: ImageSource, count: int, limit: int | None,
                prec: str, extra: dict[str, Any] | None, **settings: Any) -> dict[str, Any]:
    """The manifest of a store before its shards: what is encoded, with what, how. `settings`: image_size,
    crop_mode, crop_ratio, shard_size, batch_size."""
    crop_mode, shard_size = settings["crop_mode"], settings["shard_size"]
    return {
        **manifest("mirai-token-store", None),  # a store is made without randomness: no seed
        "tokenizer_path": str(tok_file), "tokenizer_checkpoint": str(tok_file), "tokenizer_sha256": identity.weights,
        "tokenizer_file_sha256": identity.file,
        "tokenizer_config": cfg.to_dict(), "source": src.to_manifest() | {"limit": limit},
        "class_names": list(src.class_names), "image_size": settings["image_size"], "crop_mode": crop_mode,
        "crop_ratio": settings["crop_ratio"], "num_crops": num_crops(crop_mode), "crop_names": CROP_NAMES[crop_mode],
        "grid": list(cfg.grid(settings["image_size"])),
        "codebook_size": cfg.codebook_size, "dtype": codes_dtype(cfg.codebook_size).name,
        "shard_size": shard_size, "num_shards": (count + shard_size - 1) // shard_size, "count_planned": count,
        "precision": prec, "batch_size": settings["batch_size"], "extra": extra or {},
    }


def _fill_store(writer: StoreWriter, src: ImageSource, model: VQModel, dev: torch.device, prec: str, env: DistEnv,
                num_workers: int, strict: bool, show_progress: bool, log: Callable[[str], None],
                on_shard_done: Callable[[int], None] | None) -> dict[str, Any]:
    """Encode this rank's share of the shards the store still lacks; rank 0 then finishes its manifest."""
    out, head = writer.path, writer.head
    num_shards, count, shard_size = head["num_shards"], head["count_planned"], head["shard_size"]
    image_size, crop_mode, crop_ratio = head["image_size"], head["crop_mode"], head["crop_ratio"]
    grid, n_crops, batch_size = head["grid"], head["num_crops"], head["batch_size"]
    done, final = _open_store(writer, env)
    if final is not None:
        log(f"token store {out} is already complete ({final['count']} images): nothing to do")
        return final
    mine = [k for k in range(num_shards) if k not in done][env.rank :: env.world_size]  # resumable per shard
    hw = grid[0] * grid[1]
    with make_progress(show_progress and env.is_main) as progress:
        task = progress.add_task("encode", total=count, status=f"{len(done)}/{num_shards} shards done")
        progress.update(task, completed=sum(min(shard_size, count - k * shard_size) for k in done))
        for k in mine:
            start, stop = k * shard_size, min((k + 1) * shard_size, count)
            images = ShardImages(src, start, stop, image_size, crop_mode, crop_ratio)
            codes, labels, index, skipped = [], [], [], []
            for crops, lab, idx, skip in _batches(images, batch_size, num_workers, strict, log):
                if len(crops):
                    codes.append(encode_crops(model, crops, dev, prec))
                labels.append(lab)
                index.append(idx)
                skipped += skip
                progress.advance(task, len(lab) + len(skip))
            codes_arr = np.concatenate(codes) if codes else np.zeros((0, n_crops, hw), np.int64)
            writer.write_shard(k, codes_arr, np.concatenate(labels), np.concatenate(index), skipped)
            progress.update(task, status=f"shard {shard_name(k)} written")
            if on_shard_done is not None:
                on_shard_done(k)
    barrier(env)  # every rank's shards are on disk before the manifest is assembled
    if not env.is_main:
        barrier(env)
        return read_manifest(out)
    finished = writer.finish()
    barrier(env)  # the manifest is complete: the other ranks may read it
    if finished["skipped_count"]:
        log(f"{finished['skipped_count']} unreadable image(s) skipped (listed under 'skipped' in "
            f"{out / 'manifest.json'})")
    if finished["count"] == 0:
        raise MiraiError(f"no image of {head['source']['spec']} could be read; the store at {out} is empty")
    return finished
