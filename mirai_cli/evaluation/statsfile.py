"""The reference statistics file written by `mirai eval stats`.

An .npz with `mu` and `sigma` (float64, the FID feature layer) at the top level, the way ADM reference batches
store them (so the ADM evaluator can read ours for FID), plus `mirai_meta` (JSON: extractor, weights hash,
layer, image size, count, where it came from) and, optionally, `features_<layer>` (float32) so that KID and
precision/recall can run against the file without the images."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mirai_cli.errors import MiraiError
from mirai_cli.evaluation.npzfile import load_npz_array, npz_keys
from mirai_cli.files.atomic import save_npz

STATS_FORMAT = "mirai-eval-stats"
STATS_VERSION = 1
META_KEY = "mirai_meta"


@dataclass
class FidStats:
    mu: np.ndarray
    sigma: np.ndarray

    def __post_init__(self) -> None:
        self.mu = np.asarray(self.mu, dtype=np.float64).reshape(-1)
        self.sigma = np.asarray(self.sigma, dtype=np.float64)
        d = self.mu.shape[0]
        if self.sigma.shape != (d, d):
            raise MiraiError(f"FID statistics do not fit: mu has {d} values but sigma is {self.sigma.shape}")

    def as_fidelity(self) -> dict[str, np.ndarray]:
        return {"mu": self.mu, "sigma": self.sigma}


@dataclass
class StatsFile:
    path: Path
    stats: FidStats
    meta: dict[str, Any]
    features: dict[str, np.ndarray] = field(default_factory=dict)


def is_stats_file(keys: list[str]) -> bool:
    return META_KEY in keys


STATS_SUFFIX = ".npz"


def check_stats_path(path: str | Path) -> None:
    """Refuse a statistics file name that does not end in .npz, before anything is computed (readers tell a
    statistics file by that suffix)."""
    if Path(path).suffix.lower() != STATS_SUFFIX:
        raise MiraiError(f"statistics file {path}: the name must end in {STATS_SUFFIX}, e.g. "
                         f"{Path(path).with_name(Path(path).name + STATS_SUFFIX)}")


def write_stats_file(path: str | Path, stats: FidStats, meta: dict[str, Any],
                     features: dict[str, np.ndarray] | None = None) -> Path:
    meta = {"format": STATS_FORMAT, "version": STATS_VERSION, **meta}
    arrays = {"mu": stats.mu, "sigma": stats.sigma, META_KEY: np.array(json.dumps(meta))}
    for layer, feats in (features or {}).items():
        arrays[f"features_{layer}"] = np.asarray(feats, dtype=np.float32)
    return save_npz(path, **arrays)


def read_stats_file(path: str | Path) -> StatsFile:
    path = Path(path)
    keys = npz_keys(path)
    try:
        meta = json.loads(str(load_npz_array(path, META_KEY, mmap=False)))
    except ValueError as e:
        raise MiraiError(f"{path}: damaged statistics metadata ({e}); rebuild it with `mirai eval stats`") from e
    if meta.get("format") != STATS_FORMAT or int(meta.get("version", 0)) > STATS_VERSION:
        raise MiraiError(f"{path}: statistics format {meta.get('format')} v{meta.get('version')} is not one this "
                         f"mirai reads ({STATS_FORMAT} v{STATS_VERSION}); rebuild it with `mirai eval stats`")
    stats = FidStats(load_npz_array(path, "mu"), load_npz_array(path, "sigma"))
    features = {k[len("features_"):]: load_npz_array(path, k) for k in keys if k.startswith("features_")}
    return StatsFile(path, stats, meta, features)
