"""Content hashes: of files (remembered across runs by HashMemo), of bytes, and of a module's weights."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from mirai_cli.files.atomic import write_json


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def state_dict_sha256(model: Any) -> str:
    """A hash of the weights a module actually holds (names, dtypes, shapes, bytes), independent of how or when
    they were saved."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def sha256_bytes(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


class HashMemo:
    """sha256 of files, remembered by (path, size, mtime) in a small JSON file, so that hashing a 10 GB
    reference batch or 50,000 PNGs happens once and a second evaluation only stats the files."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._entries: dict[str, list[Any]] = {}
        self._dirty = False
        if self.path is not None and self.path.is_file():
            try:
                entries = json.loads(self.path.read_text())
                self._entries = entries if isinstance(entries, dict) else {}
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
