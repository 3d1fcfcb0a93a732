"""Mirai-I teacher features computed once per (image, crop) of a token store and kept next to it.

Layout (inside the store folder; <name> = FrozenEncoder.cache_name: `<encoder>-<H>x<W>` plus a suffix per
non-default target option, so a cache made with other settings is never reused):
    teacher/<name>/manifest.json      encoder identity (name, input size, weights sha256, grid, mean/std,
                                      target options) + the store identity it was made for
    teacher/<name>/NNNNN.npy          float16 [n, crops, h*w, D] for store entries [k*S, (k+1)*S)
    teacher/<name>/NNNNN.done.json    written last: shard k is finished
The crops are regenerated exactly as `mirai tokenize` made them (same source, crop mode, image size, entry
order), so entry (i, crop) of the cache is the teacher's view of the crop whose codes are codes[i, crop].
The encoder computes in fp32 (by default) exactly as the online teacher does; only the storage is float16, so
a cached target equals the online one within float16 rounding: |cached - online| <= 2^-11 |online| + 1e-5
(tests/foresight/test_feature_cache.py checks it). An interrupted build redoes only unfinished shards. Size: entries x crops x h*w x D x 2 bytes (DINOv2-B on
ImageNet with ten crops would be ~5 TB: use the online teacher there, foresight.cache_teacher = false).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mirai_cli.data.loading import decoded_batches
from mirai_cli.errors import MiraiError
from mirai_cli.files.atomic import save_npy, write_json
from mirai_cli.foresight.teachers.encoders import FrozenEncoder
from mirai_cli.foresight.teachers.pixels import uint8_to_unit
from mirai_cli.foresight.teachers.store_pixels import StorePixels
from mirai_cli.runtime.distributed import DistEnv, barrier, broadcast_object
from mirai_cli.runtime.progress import warn

__all__ = ["TeacherFeatureCache", "StorePixels", "build_feature_cache", "cache_path", "open_feature_cache"]

KIND = "mirai-teacher-features"
FORMAT_VERSION = 2  # 2: fp32 targets, plain bicubic resize, target options in the identity
MANIFEST = "manifest.json"
# What ties a cache to the crops its store's codes came from.
STORE_FIELDS = ("tokenizer_sha256", "source", "crop_mode", "image_size", "grid", "num_crops", "count")
ENCODER_FIELDS = ("encoder", "timm_name", "grid", "input_size", "teacher_dim", "mean", "std", "weights_sha256",
                  "precision", "resize", "layer", "norm", "norm_alpha")
SHARD_BYTES = 256 << 20  # target shard size: bounded memory while building
FLOAT16_MAX = 65504.0
REBUILD = "delete it and train again with foresight.cache_teacher = true"


def cache_path(store_path: str | Path, name: str) -> Path:
    """The cache folder of encoder setting `name` (FrozenEncoder.cache_name) next to a token store."""
    return Path(store_path) / "teacher" / name


def store_identity(store: Any) -> dict[str, Any]:
    """The store fields that fix which crop each entry is, plus a hash of the entry -> source index map."""
    ident = {k: store.manifest.get(k) for k in STORE_FIELDS}
    index = np.ascontiguousarray(np.asarray(store.source_index, dtype=np.int64))
    ident["entries_sha256"] = hashlib.sha256(index.tobytes()).hexdigest()
    return json.loads(json.dumps(ident))  # plain JSON types, comparable with what is read back


def build_feature_cache(
    store: Any,
    encoder: FrozenEncoder,
    *,
    batch_size: int = 64,
    shard_entries: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    env: DistEnv | None = None,
    num_workers: int = 0,
) -> Path:
    """Compute (or finish computing) the encoder's features for every (entry, crop) of `store` (a TokenStore),
    in the encoder's own target precision. batch_size counts crops per encoder call; images are decoded in
    `num_workers` processes (0: one background thread). progress(done_entries, total_entries) is called after
    each batch. Under torchrun every rank calls it alike (`env`): rank 0 checks or starts the cache, rank r
    computes every world-th unfinished shard, rank 0 writes the finished manifest. Returns the cache folder."""
    env = env or DistEnv(0, 1, 0, torch.device("cpu"))
    grid = tuple(int(v) for v in store.manifest["grid"])
    if tuple(encoder.grid) != grid:
        raise MiraiError(f"teacher encoder is set up for grid {encoder.grid} but token store {store.path} has {grid}")
    n_entries, n_crops, hw, dim = len(store), int(store.manifest["num_crops"]), grid[0] * grid[1], encoder.teacher_dim
    shard_entries = int(shard_entries or max(1, SHARD_BYTES // (n_crops * hw * dim * 2)))
    num_shards = (n_entries + shard_entries - 1) // shard_entries
    path = cache_path(store.path, encoder.cache_name)
    head = {
        "kind": KIND, "format_version": FORMAT_VERSION, "dtype": "float16",
        "encoder": encoder.describe(), "store": store_identity(store),
        "shape": [n_entries, n_crops, hw, dim], "shard_entries": shard_entries, "num_shards": num_shards,
    }
    # Rank 0's verdict on every rank (an error too, so that no rank waits for one that stopped).
    verdict = broadcast_object(_start_cache(path, head) if env.is_main else None, env)
    if verdict != "todo":
        if verdict == "complete":
            return path
        raise MiraiError(str(verdict))
    todo = _unfinished_shards(path, head)
    done_entries = n_entries - sum(_shard_len(k, shard_entries, n_entries) for k in todo)
    pixels = StorePixels(store, workers=1)
    for k in todo[env.rank :: env.world_size]:  # resumable per shard
        done_entries = _build_shard(path, k, pixels, encoder, head, batch_size, num_workers, progress, done_entries)
    barrier(env)  # every rank's shards are on disk before the manifest says complete
    if env.is_main:
        write_json(path / MANIFEST, {**head, "status": "complete"}, indent=1, sort_keys=True)
    barrier(env)
    return path


def _start_cache(path: Path, head: dict[str, Any]) -> str:
    """'complete', 'todo' (manifest written, folder ready), or the one-line reason the cache cannot be built."""
    try:
        if (path / MANIFEST).is_file():
            old = _read_manifest(path)
            # Identity, not provenance: the same weights found at another path (another HF cache) still match.
            ident = lambda m: ({k: m["encoder"].get(k) for k in ENCODER_FIELDS},  # noqa: E731
                               m.get("store"), m.get("shape"), m.get("shard_entries"))
            if ident(old) != ident(json.loads(json.dumps(head))):
                return (f"teacher feature cache {path} was made with another encoder, weights or token store; "
                        "delete that folder to rebuild it")
            if old.get("status") == "complete":
                damaged = _unfinished_shards(path, head)
                if not damaged:
                    return "complete"
                warn(f"teacher feature cache {path}: shard {damaged[0]:05d} cannot be read (damaged or "
                     f"truncated{f', and {len(damaged) - 1} more' if len(damaged) > 1 else ''}); computing it again")
    except MiraiError as exc:
        return str(exc)
    path.mkdir(parents=True, exist_ok=True)
    for tmp in path.glob(".*.tmp*"):
        tmp.unlink(missing_ok=True)  # leftovers of a killed run
    n_entries, n_crops, hw, dim = head["shape"]
    need = sum(_shard_len(k, head["shard_entries"], n_entries)
               for k in _unfinished_shards(path, head)) * n_crops * hw * dim * 2
    free = shutil.disk_usage(path).free
    if need > free:
        return (f"teacher feature cache needs {need / 2**30:.1f} GiB at {path} but {free / 2**30:.1f} GiB are free: "
                "free space, or train with the online teacher (foresight.cache_teacher = false)")
    write_json(path / MANIFEST, {**head, "status": "incomplete"}, indent=1, sort_keys=True)
    return "todo"


def _shard_span(k: int, shard_entries: int, n_entries: int) -> tuple[int, int]:
    return k * shard_entries, min((k + 1) * shard_entries, n_entries)


def _shard_len(k: int, shard_entries: int, n_entries: int) -> int:
    start, stop = _shard_span(k, shard_entries, n_entries)
    return stop - start


class _EntryCrops(torch.utils.data.Dataset):
    """Store entries [start, stop) as their crops' pixels, decoded where the DataLoader runs it. A changed
    source comes back as a message (an exception would reach the main process wrapped in a traceback)."""

    def __init__(self, pixels: StorePixels, start: int, stop: int) -> None:
        self.pixels, self.start, self.stop = pixels, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, j: int) -> tuple[np.ndarray | None, str | None]:
        try:
            return self.pixels.entry_crops(self.start + j), None
        except MiraiError as exc:
            return None, str(exc)

    @staticmethod
    def collate(items: list) -> tuple[np.ndarray | None, str | None]:
        errors = [e for _, e in items if e]
        return (None, errors[0]) if errors else (np.concatenate([c for c, _ in items]), None)


def _build_shard(path: Path, k: int, pixels: StorePixels, encoder: FrozenEncoder, head: dict[str, Any],
                 batch_size: int, num_workers: int, progress: Callable[[int, int], None] | None,
                 done_entries: int) -> int:
    """Compute and write shard k (its .done.json last); returns the entries done so far."""
    n_entries, n_crops, hw, dim = head["shape"]
    start, stop = _shard_span(k, head["shard_entries"], n_entries)
    out = np.empty((stop - start, n_crops, hw, dim), dtype=np.float16)
    flat = out.reshape(-1, hw, dim)  # (entry, crop) rows in order
    device = next(encoder.parameters()).device
    per_batch = max(1, batch_size // n_crops)
    row, first = 0, start
    for crops, error in decoded_batches(_EntryCrops(pixels, start, stop), per_batch, num_workers, _EntryCrops.collate):
        if error:
            raise MiraiError(error)
        feats = encoder(uint8_to_unit(crops).to(device)).cpu()
        entries = len(crops) // n_crops
        if not bool(torch.isfinite(feats).all()) or float(feats.abs().max()) > FLOAT16_MAX:
            raise MiraiError(f"teacher features of store entries {first}..{first + entries - 1} are not finite "
                             "or exceed float16's range, so they cannot be cached; train with the online "
                             "teacher (foresight.cache_teacher = false)")
        flat[row: row + len(feats)] = feats.numpy().astype(np.float16)
        row, first, done_entries = row + len(feats), first + entries, done_entries + entries
        if progress is not None:
            progress(done_entries, n_entries)
    save_npy(path / f"{k:05d}.npy", out)
    write_json(path / f"{k:05d}.done.json", {"shard": k, "start": start, "stop": stop}, indent=1, sort_keys=True)  # last
    return done_entries


def _unfinished_shards(path: Path, head: dict[str, Any]) -> list[int]:
    return [k for k in range(head["num_shards"]) if not _shard_done(path, k, head["shape"])]


def _shard_done(path: Path, k: int, shape: list[int]) -> bool:
    """Shard k is finished (its .done.json) and readable with the cache's shape (a damaged one is redone)."""
    if not (path / f"{k:05d}.done.json").is_file():
        return False
    try:
        _read_shard(path, k, shape)
    except MiraiError:
        (path / f"{k:05d}.done.json").unlink(missing_ok=True)  # redone from scratch, its .done.json last
        return False
    return True


def _read_shard(path: Path, k: int, shape: list[int]) -> np.ndarray:
    """Shard k memory-mapped, or a MiraiError saying why it cannot be used (a zero-byte or truncated file)."""
    try:
        arr = np.load(path / f"{k:05d}.npy", mmap_mode="r")
    except (OSError, ValueError, EOFError) as exc:  # numpy raises EOFError for an empty file
        raise MiraiError(f"teacher feature cache {path} is corrupt: shard {k:05d} cannot be read ({exc or 'empty'}); "
                         f"{REBUILD}") from exc
    if arr.dtype != np.float16 or tuple(arr.shape[1:]) != tuple(shape[1:]):
        raise MiraiError(f"teacher feature cache {path} is corrupt: shard {k:05d} has {arr.shape} {arr.dtype}; "
                         f"{REBUILD}")
    return arr


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MiraiError(f"teacher feature cache {path} is corrupt ({exc}); delete that folder to rebuild it") from exc
    if manifest.get("kind") != KIND or manifest.get("format_version") != FORMAT_VERSION:
        raise MiraiError(f"{path} is not a teacher feature cache of this mirai version; delete it to rebuild it")
    return manifest


class TeacherFeatureCache:
    """Read side: memory-mapped shards; get(indices, crop_ids) -> float16 tensor [B, h*w, D]."""

    def __init__(self, path: Path, manifest: dict[str, Any], shards: list[np.ndarray]) -> None:
        self.path, self.manifest, self.shards = path, manifest, shards
        self.shard_entries = int(manifest["shard_entries"])
        self.shape = tuple(manifest["shape"])

    @property
    def teacher_dim(self) -> int:
        return int(self.shape[3])

    def __len__(self) -> int:
        return int(self.shape[0])

    def get(self, indices: Iterable[int], crop_ids: Iterable[int]) -> torch.Tensor:
        idx = np.asarray(list(indices), dtype=np.int64)
        crops = np.asarray(list(crop_ids), dtype=np.int64)
        if idx.shape != crops.shape:
            raise ValueError("indices and crop_ids must have the same length")
        if idx.size and (idx.min() < 0 or idx.max() >= len(self) or crops.min() < 0 or crops.max() >= self.shape[1]):
            raise IndexError(f"entry/crop out of range for a cache of shape {self.shape}")
        out = np.empty((len(idx), self.shape[2], self.shape[3]), dtype=np.float16)
        which = idx // self.shard_entries
        for s in np.unique(which):
            sel = which == s
            out[sel] = self.shards[int(s)][idx[sel] - int(s) * self.shard_entries, crops[sel]]
        return torch.from_numpy(out)

    def nonfinite_problem(self) -> str | None:
        """Where the cache holds a NaN or infinity (a damaged file: a build refuses non-finite features), shard by
        shard; None if it holds none. Read only after a loss went non-finite, so the hot path pays nothing."""
        for k, shard in enumerate(self.shards):
            for start in range(0, len(shard), 256):
                rows = np.asarray(shard[start: start + 256])
                if not np.isfinite(rows).all():
                    entry = k * self.shard_entries + start + int(np.argwhere(~np.isfinite(rows))[0][0])
                    return (f"teacher feature cache {self.path} holds non-finite values (shard {k:05d}, store entry "
                            f"{entry}): the cache is damaged, not the run; {REBUILD}")
        return None


def open_feature_cache(store: Any, name: str, *, expect_encoder: dict[str, Any] | None = None) -> TeacherFeatureCache:
    """Open the finished cache `name` (FrozenEncoder.cache_name) next to `store`, checking that it was made from
    this store's crops. expect_encoder: fields of FrozenEncoder.describe() that must match (e.g. weights_sha256)."""
    path = cache_path(store.path, name)
    if not (path / MANIFEST).is_file():
        raise MiraiError(f"no teacher features {name} next to token store {store.path}: train with "
                         "foresight.cache_teacher = true to compute them")
    manifest = _read_manifest(path)
    if manifest.get("status") != "complete":
        raise MiraiError(f"teacher feature cache {path} is incomplete: train again with foresight.cache_teacher = true "
                         "to finish it")
    if manifest["store"] != store_identity(store):
        diff = [k for k in manifest["store"] if manifest["store"].get(k) != store_identity(store).get(k)]
        raise MiraiError(f"teacher feature cache {path} does not match the crops of token store {store.path} "
                         f"(differs in {', '.join(diff)}); {REBUILD}")
    for key, value in (expect_encoder or {}).items():
        if key in ENCODER_FIELDS and json.loads(json.dumps(value)) != manifest["encoder"].get(key):
            raise MiraiError(f"teacher feature cache {path} was made with {key} = {manifest['encoder'].get(key)!r}, "
                             f"this run uses {value!r}; {REBUILD}")
    shards = [_read_shard(path, k, manifest["shape"]) for k in range(int(manifest["num_shards"]))]
    return TeacherFeatureCache(path, manifest, shards)
