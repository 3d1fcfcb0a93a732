"""Reference features and FID statistics cached by content hash.

One entry per (reference content, extractor, extractor weights, device type and arithmetic of the extraction):
`<root>/features/<key>/` holds one `<layer>.npy` per feature layer (memory-mapped on load) and `<layer>.fid.npz`
with mu/sigma, so a second evaluation against the same reference reads a few MB instead of running the
extractor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mirai_cli.evaluation.statsfile import FidStats
from mirai_cli.files.atomic import save_npy, save_npz, write_json
from mirai_cli.files.cache import cache_root
from mirai_cli.files.hashing import HashMemo, sha256_bytes
from mirai_cli.runtime.progress import warn

# What numpy raises for a damaged file: OSError, ValueError (truncated), EOFError (zero bytes), KeyError (an npz
# without its arrays).
DAMAGED = (OSError, ValueError, EOFError, KeyError)


def _damaged(path: Path, exc: BaseException) -> None:
    warn(f"evaluation feature cache entry {path} cannot be read ({exc or type(exc).__name__}); computing it again")


def default_cache_dir() -> Path:
    """The user cache's eval/ folder (mirai_cli.files.cache decides where that cache is)."""
    return cache_root() / "eval"


class FeatureCache:
    """`root=None` disables caching (nothing is read or written)."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None
        self.memo = HashMemo(self.root / "file_hashes.json" if self.root is not None else None)

    @property
    def enabled(self) -> bool:
        return self.root is not None

    @staticmethod
    def key(content_id: str, extractor: str, weights_sha256: str, numerics: str) -> str:
        """numerics: the device type and arithmetic of the extraction (features.extraction_numerics)."""
        return sha256_bytes(f"{content_id}|{extractor}|{weights_sha256}|{numerics}".encode())[:32]

    def _dir(self, key: str) -> Path:
        assert self.root is not None
        return self.root / "features" / key

    def load_features(self, key: str, layer: str) -> np.ndarray | None:
        if self.root is None:
            return None
        path = self._dir(key) / f"{layer}.npy"
        if not path.is_file():
            return None
        try:
            return np.load(path, mmap_mode="r")
        except DAMAGED as exc:
            _damaged(path, exc)  # a damaged entry is recomputed (and then overwritten)
            return None

    def load_stats(self, key: str, layer: str) -> FidStats | None:
        if self.root is None:
            return None
        path = self._dir(key) / f"{layer}.fid.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return FidStats(z["mu"], z["sigma"])
        except DAMAGED as exc:
            _damaged(path, exc)
            return None

    def save_features(self, key: str, layer: str, features: np.ndarray, meta: dict[str, Any]) -> None:
        if self.root is None:
            return
        save_npy(self._dir(key) / f"{layer}.npy", np.asarray(features, dtype=np.float32))
        self._write_meta(key, meta)

    def save_stats(self, key: str, layer: str, stats: FidStats, meta: dict[str, Any]) -> None:
        if self.root is None:
            return
        save_npz(self._dir(key) / f"{layer}.fid.npz", mu=stats.mu, sigma=stats.sigma)
        self._write_meta(key, meta)

    def _write_meta(self, key: str, meta: dict[str, Any]) -> None:
        path = self._dir(key) / "meta.json"
        if not path.is_file():
            write_json(path, meta)

    def read_meta(self, key: str) -> dict[str, Any]:
        if self.root is None:
            return {}
        try:
            return json.loads((self._dir(key) / "meta.json").read_text())
        except (OSError, ValueError):
            return {}
