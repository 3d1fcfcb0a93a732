"""Atomic writes and content hashes for evaluation files (stats, cached features, metrics JSON)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary name next to `path`; on success it replaces `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the suffix: np.savez appends ".npz" to names that lack it.
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}-{threading.get_ident()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | Path, obj: Any) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    return Path(path)


def save_npy(path: str | Path, array: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        np.save(tmp, array)
    return Path(path)


def save_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)
    return Path(path)


def sha256_bytes(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


class HashMemo:
    """sha256 of files, remembered by (path, size, mtime) in a small JSON file, so that hashing a 10 GB
    reference batch or 50,000 PNGs happens once and a second evaluation only stats the files."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._entries: dict[str, list[Any]] = {}
        self._dirty = False
        if self.path is not None and self.path.is_file():
            try:
                self._entries = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self._entries = {}  # a damaged memo only costs a re-hash

    def sha256(self, file: str | Path) -> str:
        real = os.path.realpath(file)
        st = os.stat(real)
        key = [st.st_size, st.st_mtime_ns]
        hit = self._entries.get(real)
        if hit is not None and hit[:2] == key:
            return hit[2]
        digest = sha256_file(real)
        self._entries[real] = key + [digest]
        self._dirty = True
        return digest

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        try:
            write_json(self.path, self._entries)
            self._dirty = False
        except OSError:
            pass  # the memo is an optimisation; a read-only cache folder must not fail an evaluation
