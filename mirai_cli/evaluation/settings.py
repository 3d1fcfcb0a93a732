"""Plain settings of one evaluation (the preset's `eval` section maps onto these fields)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from mirai_cli.config.schema import EvalConfig
from mirai_cli.errors import MiraiError
from mirai_cli.evaluation.cache import default_cache_dir
from mirai_cli.evaluation.extractors import EVAL_METRICS, get_extractor
from mirai_cli.runtime.device import resolve_device

EVAL_DEFAULTS = {name: f.default for name, f in EvalConfig.model_fields.items()}  # the schema's, the one place


@dataclass
class EvalSettings:
    metrics: tuple[str, ...] = ("fid",)  # any of fid, isc, kid, prc
    extractor: str = EVAL_DEFAULTS["extractor"]
    inception_weights: str | None = None  # local file; else $MIRAI_INCEPTION_WEIGHTS, hub cache, download
    allow_download: bool = True
    batch_size: int = EVAL_DEFAULTS["batch_size"]
    device: str | None = None  # None: cuda when available, else cpu
    num_workers: int | None = None  # image decoding processes; None: 0 on CPU, up to 8 on CUDA
    isc_splits: int = EVAL_DEFAULTS["isc_splits"]
    kid_subsets: int = EVAL_DEFAULTS["kid_subsets"]
    kid_subset_size: int = EVAL_DEFAULTS["kid_subset_size"]
    prc_neighborhood: int = EVAL_DEFAULTS["prc_neighborhood"]
    resize: int | None = None  # resize every image (samples and reference) to SxS, ADM centre crop
    ref_limit: int | None = None  # use a random subset of this many reference images
    seed: int = 2020  # torch-fidelity's rng_seed (KID subsets, IS shuffle) and the reference subset
    cache_dir: str | None = None  # None: default_cache_dir()
    use_cache: bool = True
    extra: dict = field(default_factory=dict)  # reserved for forward-compatible preset fields

    def validated(self) -> EvalSettings:
        metrics = tuple(dict.fromkeys(m.lower() for m in self.metrics))
        unknown = [m for m in metrics if m not in EVAL_METRICS]
        if not metrics or unknown:
            raise MiraiError(f"unknown metric(s) {', '.join(unknown) or '(none asked)'}: choose from {', '.join(EVAL_METRICS)}")
        get_extractor(self.extractor)
        for name, value, low in (("batch size", self.batch_size, 1), ("IS splits", self.isc_splits, 1),
                                 ("KID subsets", self.kid_subsets, 1), ("KID subset size", self.kid_subset_size, 2),
                                 ("precision/recall neighbourhood", self.prc_neighborhood, 1)):
            if value < low:
                raise MiraiError(f"{name} must be at least {low}, got {value}")
        if self.ref_limit is not None and self.ref_limit < 2:
            raise MiraiError(f"reference limit must be at least 2 images, got {self.ref_limit}")
        return replace(self, metrics=metrics)

    def torch_device(self) -> torch.device:
        return resolve_device(self.device or "auto")

    def workers(self, device: torch.device) -> int:
        if self.num_workers is not None:
            return max(0, self.num_workers)
        return min(8, os.cpu_count() or 1) if device.type == "cuda" else 0

    def cache_root(self) -> Path | None:
        if not self.use_cache:
            return None
        return Path(os.path.expanduser(self.cache_dir)) if self.cache_dir else default_cache_dir()
