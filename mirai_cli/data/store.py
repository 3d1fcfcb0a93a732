"""The token store: VQ codes of every image crop, in shards of memory-mappable .npy files, plus a manifest.

Layout of a store folder:
    manifest.json                  what was encoded how (status "incomplete" until the last shard is in)
    shards/NNNNN.codes.npy         uint16 (int32 if codebook > 65536), shape (n, crops, h*w)
    shards/NNNNN.labels.npy        int64 (n,)
    shards/NNNNN.index.npy         int64 (n,): source index of each entry (skipped images leave gaps)
    shards/NNNNN.done.json         written last: the shard is finished (counts, skipped files, sha256s)
Shard k always covers source indices [k * shard_size, (k + 1) * shard_size), so an interrupted run redoes
only unfinished shards and gives the same bytes as an uninterrupted one.
Which shards were already checked on open (sha256, code and label ranges) is remembered in the user cache, not
in the store: opening a store only reads it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mirai_cli.errors import MiraiError
from mirai_cli.files.atomic import remove_temp_files, save_npy, write_json
from mirai_cli.files.cache import cache_root
from mirai_cli.files.hashing import sha256_file
from mirai_cli.files.locks import LOCK_FILE

FORMAT_VERSION = 1
KIND = "mirai-token-store"
MANIFEST = "manifest.json"
# Fields that must agree between an existing store and a run that continues it.
IDENTITY_FIELDS = ("format_version", "tokenizer_sha256", "source", "crop_mode", "crop_ratio", "image_size", "grid",
                   "codebook_size", "dtype", "shard_size", "num_shards", "count_planned")


def codes_dtype(codebook_size: int) -> np.dtype:
    return np.dtype(np.uint16) if codebook_size <= 65536 else np.dtype(np.int32)


def shard_name(k: int) -> str:
    return f"{k:05d}"


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    mf = path / MANIFEST
    if not path.is_dir():
        raise MiraiError(f"token store not found: {path} (make one with `mirai tokenize encode`)")
    if not mf.is_file():
        raise MiraiError(f"{path} is not a token store: it has no {MANIFEST} (make one with `mirai tokenize encode`)")
    try:
        manifest = json.loads(mf.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise MiraiError(f"token store {path} is corrupt: {MANIFEST} cannot be read ({e}); encode it again") from e
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        raise MiraiError(f"token store {path} is corrupt: {MANIFEST} is not a mirai token store manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise MiraiError(f"token store {path} has format version {manifest.get('format_version')}, this mirai "
                         f"reads version {FORMAT_VERSION}: encode it again")
    return manifest


class StoreWriter:
    """Creates a store or continues an unfinished one. `head` holds the identity fields and the rest of the
    manifest except the per-shard results."""

    def __init__(self, path: str | Path, head: dict[str, Any]) -> None:
        self.path = Path(path)
        self.shards_dir = self.path / "shards"
        self.head = {"kind": KIND, "format_version": FORMAT_VERSION, **head}

    def open(self) -> tuple[set[int], dict[str, Any] | None]:
        """-> (finished shard ids, the final manifest if the store is already complete)."""
        if (self.path / MANIFEST).exists():
            old = read_manifest(self.path)
            self._check_same(old)
            if old.get("status") == "complete":
                return set(range(old["num_shards"])), old
        elif self.path.exists() and any(p.name != LOCK_FILE for p in self.path.iterdir()):
            raise MiraiError(f"{self.path} exists and is not a token store: choose a new output folder")
        self.shards_dir.mkdir(parents=True, exist_ok=True)
        remove_temp_files(self.path)  # leftovers of a run killed mid-write: never part of a finished shard
        remove_temp_files(self.shards_dir)
        write_json(self.path / MANIFEST, {**self.head, "status": "incomplete"}, indent=1, sort_keys=True)
        return {k for k in range(self.head["num_shards"]) if self.shard_is_done(k)}, None

    def _check_same(self, old: dict[str, Any]) -> None:
        for key in IDENTITY_FIELDS:
            if key == "tokenizer_sha256" and old.get(key) == self.head.get("tokenizer_file_sha256"):
                continue  # a store begun by an earlier version, which recorded the file's sha256
            if old.get(key) != self.head.get(key):
                what = "another tokenizer" if key == "tokenizer_sha256" else f"a different {key}"
                raise MiraiError(f"token store {self.path} was made with {what} ({key}: {old.get(key)!r}, now "
                                 f"{self.head.get(key)!r}): write to a new folder or delete the old store")

    def shard_is_done(self, k: int) -> bool:
        marker = self.shards_dir / f"{shard_name(k)}.done.json"
        if not marker.is_file():
            return False
        try:
            info = json.loads(marker.read_text())
            for part, digest in info["sha256"].items():
                if sha256_file(self.shards_dir / f"{shard_name(k)}.{part}.npy") != digest:
                    return False
        except (OSError, ValueError, KeyError):
            return False  # damaged: redo it
        return True

    def write_shard(self, k: int, codes: np.ndarray, labels: np.ndarray, index: np.ndarray,
                    skipped: list[dict[str, Any]]) -> dict[str, Any]:
        name = shard_name(k)
        parts = {"codes": codes.astype(self.head["dtype"], copy=False), "labels": labels.astype(np.int64),
                 "index": index.astype(np.int64)}
        digests = {}
        for part, arr in parts.items():
            p = self.shards_dir / f"{name}.{part}.npy"
            save_npy(p, arr)
            digests[part] = sha256_file(p)
        start = k * self.head["shard_size"]
        info = {"shard": k, "start": start, "stop": min(start + self.head["shard_size"], self.head["count_planned"]),
                "count": len(codes), "skipped": skipped, "sha256": digests}
        write_json(self.shards_dir / f"{name}.done.json", info, indent=1, sort_keys=True)  # last: marks the shard finished
        return info

    def finish(self) -> dict[str, Any]:
        shards, skipped = [], []
        class_counts = [0] * len(self.head.get("class_names", []))
        for k in range(self.head["num_shards"]):
            info = json.loads((self.shards_dir / f"{shard_name(k)}.done.json").read_text())
            labels = np.load(self.shards_dir / f"{shard_name(k)}.labels.npy")
            for c, n in zip(*np.unique(labels, return_counts=True)):
                class_counts[int(c)] += int(n)
            shards.append({"name": shard_name(k), "start": info["start"], "stop": info["stop"],
                           "count": info["count"], "sha256": info["sha256"]})
            skipped += info["skipped"]
        if not sum(s["count"] for s in shards):  # stays "incomplete": a failed job must never look finished
            first = f" (first: {skipped[0]['path']}: {skipped[0]['reason']})" if skipped else ""
            raise MiraiError(f"no image of {self.head['source'].get('spec')} could be read{first}; the store at "
                             f"{self.path} is not usable: fix or replace the images and encode again")
        manifest = {**self.head, "status": "complete", "shards": shards, "count": sum(s["count"] for s in shards),
                    "class_counts": class_counts, "skipped_count": len(skipped), "skipped": skipped}
        write_json(self.path / MANIFEST, manifest, indent=1, sort_keys=True)
        return manifest


class ShardedCodes:
    """Read-only view of all shards' codes as one (N, crops, h*w) array; each shard is a np.memmap."""

    def __init__(self, shards: list[np.ndarray]) -> None:
        self.shards = shards
        counts = [len(s) for s in shards]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        first = shards[0] if shards else np.zeros((0, 1, 1), np.uint16)
        self.shape = (int(self.offsets[-1]),) + tuple(first.shape[1:])
        self.dtype = first.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def _gather(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"index out of range for a store of {len(self)} entries")
        idx = np.where(idx < 0, idx + len(self), idx)
        out = np.empty((len(idx),) + self.shape[1:], dtype=self.dtype)
        which = np.searchsorted(self.offsets, idx, side="right") - 1
        for s in np.unique(which):
            sel = which == s
            out[sel] = self.shards[s][idx[sel] - self.offsets[s]]
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):  # e.g. codes[i, crop] or codes[idx, :, :16]
            first, rest = key[0], key[1:]
            scalar = np.ndim(first) == 0 and not isinstance(first, slice)
            return self[first][rest if scalar else (slice(None),) + rest]
        if isinstance(key, slice):
            return self._gather(np.arange(len(self))[key])
        if np.ndim(key) == 0:
            return self._gather(np.array([int(key)]))[0]
        return self._gather(np.asarray(key))

    def get(self, indices: Iterable[int], crop_ids: Iterable[int]) -> np.ndarray:
        """codes of entry indices[j], crop crop_ids[j] -> (len, h*w)."""
        idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64)
        crops = np.asarray(list(crop_ids) if not isinstance(crop_ids, np.ndarray) else crop_ids, dtype=np.int64)
        if crops.shape != idx.shape:
            raise ValueError("indices and crop_ids must have the same length")
        return self._gather(idx)[np.arange(len(idx)), crops]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = self._gather(np.arange(len(self)))
        return arr if dtype is None else arr.astype(dtype)


class TokenStore:
    """A finished token store, memory-mapped. `codes` (N, crops, h*w), `labels` (N,), `source_index` (N,)."""

    def __init__(self, path: Path, manifest: dict[str, Any], codes: ShardedCodes, labels: np.ndarray,
                 source_index: np.ndarray) -> None:
        self.path, self.manifest, self.codes = path, manifest, codes
        self.labels, self.source_index = labels, source_index

    @classmethod
    def open(cls, path: str | Path, expect_tokenizer_sha256: str | None = None, verify: bool = False) -> TokenStore:
        path = Path(path)
        manifest = read_manifest(path)
        if manifest.get("status") != "complete":
            done = len(list((path / "shards").glob("*.done.json")))
            raise MiraiError(f"token store {path} is incomplete ({done} of {manifest.get('num_shards')} shards): "
                             "rerun `mirai tokenize encode` with the same arguments to finish it")
        if expect_tokenizer_sha256 and manifest["tokenizer_sha256"] != expect_tokenizer_sha256:
            raise MiraiError(f"token store {path} was made by another tokenizer (sha256 "
                             f"{manifest['tokenizer_sha256'][:12]}..., expected {expect_tokenizer_sha256[:12]}...): "
                             "encode the data again with this tokenizer")
        shape_tail = (manifest["num_crops"], manifest["grid"][0] * manifest["grid"][1])
        codes, labels, index = [], [], []
        checked = {} if verify else _read_verified(path)
        memo = dict(checked)
        for s in manifest["shards"]:
            base = path / "shards" / s["name"]
            try:
                c = np.load(f"{base}.codes.npy", mmap_mode="r")
                lab = np.load(f"{base}.labels.npy")
                idx = np.load(f"{base}.index.npy")
            except (OSError, ValueError) as e:
                raise MiraiError(f"token store {path} is corrupt: shard {s['name']} cannot be read ({e}); delete "
                                 "the store and encode again") from e
            if c.shape != (s["count"],) + shape_tail or c.dtype != np.dtype(manifest["dtype"]) or \
                    len(lab) != s["count"] or len(idx) != s["count"]:
                raise MiraiError(f"token store {path} is corrupt: shard {s['name']} has codes {c.shape} {c.dtype}, "
                                 f"expected {(s['count'],) + shape_tail} {manifest['dtype']}; encode again")
            if checked.get(s["name"]) != _stamp(base, s):
                _check_shard(path, manifest, s, c, lab)
                checked[s["name"]] = _stamp(base, s)
            codes.append(c)
            labels.append(lab)
            index.append(idx)
        if checked != memo:
            _write_verified(path, checked)
        cat = (lambda xs: np.concatenate(xs) if xs else np.zeros(0, np.int64))
        return cls(path, manifest, ShardedCodes(codes), cat(labels), cat(index))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def grid(self) -> tuple[int, int]:
        return tuple(self.manifest["grid"])

    @property
    def num_crops(self) -> int:
        return int(self.manifest["num_crops"])

    @property
    def codebook_size(self) -> int:
        return int(self.manifest["codebook_size"])

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["class_names"])

    def crop_pixels(self, indices: Iterable[int], crop_ids: Iterable[int]) -> np.ndarray:
        """Regenerate the exact uint8 crops that produced entries (i, crop): [n, S, S, 3]. Reopens the source
        recorded in the manifest (for teacher features)."""
        from mirai_cli.data.crops import store_crops
        from mirai_cli.data.sources import open_source

        src_info = self.manifest["source"]
        src = open_source(src_info["spec"], src_info["split"])
        out = []
        for i, c in zip(indices, crop_ids):
            img, _ = src.read(int(self.source_index[int(i)]))
            out.append(store_crops(img, self.manifest)[int(c)])
        size = self.manifest["image_size"]
        return np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)


def _stamp(base: Path, shard: dict[str, Any]) -> list[Any]:
    """(size, mtime) of a shard's files and the checksums it was checked against: a shard whose files and
    manifest entry are unchanged since it was checked is not read again."""
    stats = [Path(f"{base}.{part}.npy").stat() for part in ("codes", "labels", "index")]
    return [[st.st_size, st.st_mtime_ns] for st in stats] + [shard.get("sha256")]


def _memo_path(path: Path) -> Path:
    """The store's verification memo in the user cache, named by the store's absolute path."""
    where = str(path.resolve())
    return cache_root() / "store_checks" / f"{hashlib.sha256(where.encode()).hexdigest()[:32]}.json"


def _read_verified(path: Path) -> dict[str, Any]:
    try:
        memo = json.loads(_memo_path(path).read_text())
    except (OSError, ValueError):
        return {}
    ok = isinstance(memo, dict) and memo.get("store") == str(path.resolve()) and isinstance(memo.get("shards"), dict)
    return memo["shards"] if ok else {}


def _write_verified(path: Path, checked: dict[str, Any]) -> None:
    try:
        write_json(_memo_path(path), {"store": str(path.resolve()), "shards": checked}, indent=None, sort_keys=True)
    except OSError:
        pass  # no writable cache: the shards are checked again next time


def _check_shard(path: Path, manifest: dict[str, Any], shard: dict[str, Any], codes: np.ndarray,
                 labels: np.ndarray) -> None:
    """A shard's files match their checksums and hold codes < codebook size and labels < classes (so a damaged
    or foreign shard stops here with one line, not as an IndexError deep inside training)."""
    base = path / "shards" / shard["name"]
    for part, digest in shard["sha256"].items():
        f = Path(f"{base}.{part}.npy")
        if sha256_file(f) != digest:
            raise MiraiError(f"token store {path} is corrupt: {f.name} does not match its checksum; delete the "
                             "store and encode again")
    step = max(1, (1 << 24) // max(1, codes[0].size if len(codes) else 1))  # ~16M codes per read
    top = max((int(codes[i: i + step].max()) for i in range(0, len(codes), step)), default=0)
    if top >= manifest["codebook_size"]:
        raise MiraiError(f"token store {path} is corrupt: shard {shard['name']} holds code {top} but the tokenizer "
                         f"has {manifest['codebook_size']} codes; encode the data again")
    n_classes = len(manifest.get("class_names") or [])
    if len(labels) and (labels.min() < 0 or (n_classes and labels.max() >= n_classes)):
        raise MiraiError(f"token store {path} is corrupt: shard {shard['name']} holds labels "
                         f"{int(labels.min())}..{int(labels.max())} but the store has {n_classes} classes; encode "
                         "the data again")


def store_info(path: str | Path, verify: bool = False) -> dict[str, Any]:
    """A summary of a store for `mirai tokenize info` (works on incomplete stores too)."""
    path = Path(path)
    manifest = read_manifest(path)
    files = [p for p in (path / "shards").glob("*.npy")] if (path / "shards").is_dir() else []
    code_bytes = sum(p.stat().st_size for p in files if p.name.endswith(".codes.npy"))
    info: dict[str, Any] = {
        "path": str(path), "status": manifest.get("status"), "format_version": manifest["format_version"],
        "tokenizer": manifest.get("tokenizer_path"), "tokenizer_sha256": manifest.get("tokenizer_sha256"),
        "source": manifest.get("source"), "image_size": manifest.get("image_size"),
        "crop_mode": manifest.get("crop_mode"), "num_crops": manifest.get("num_crops"),
        "grid": manifest.get("grid"), "codebook_size": manifest.get("codebook_size"), "dtype": manifest.get("dtype"),
        "num_classes": len(manifest.get("class_names", [])), "num_shards": manifest.get("num_shards"),
        "shards_done": len(list((path / "shards").glob("*.done.json"))) if (path / "shards").is_dir() else 0,
        "bytes_on_disk": sum(p.stat().st_size for p in files) + (path / MANIFEST).stat().st_size,
    }
    if manifest.get("status") == "complete":
        store = TokenStore.open(path, verify=verify)
        tokens = len(store) * store.num_crops * store.grid[0] * store.grid[1]
        info.update(count=len(store), skipped=manifest.get("skipped_count", 0),
                    class_counts=manifest.get("class_counts"), tokens=tokens,
                    bytes_per_token=(code_bytes / tokens) if tokens else None,
                    bytes_per_image=(code_bytes / len(store)) if len(store) else None)
        # codebook usage over (a sample of) the store
        sample = store.codes[np.arange(0, len(store), max(1, len(store) // 2048))]
        info["codes_used"] = len(np.unique(sample))
        info["codebook_usage"] = info["codes_used"] / store.codebook_size
        info["verified"] = verify
    return info
