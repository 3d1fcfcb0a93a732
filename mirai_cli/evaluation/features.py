"""Running a torch-fidelity extractor over an image set, and the reference side's cached features/statistics."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch_fidelity.metric_fid import fid_features_to_statistics

from mirai_cli.evaluation.cache import FeatureCache
from mirai_cli.evaluation.extractors import LoadedExtractor
from mirai_cli.evaluation.images import ImageSet, iterate_batches
from mirai_cli.evaluation.statsfile import FidStats
from mirai_cli.runtime.device import tf32

# progress(label, done, total): called at the start (done=0) and after every batch.
ProgressFn = Callable[[str, int, int], None]
# The one arithmetic features are extracted in (extract_features): fp32 with TF32 off, as torch-fidelity's
# reference statistics were made, even inside a process whose training switched TF32 on.
EXTRACTION_ARITHMETIC = "fp32, TF32 off"


def extraction_numerics(device: torch.device) -> str:
    """What, besides the images and weights, decides a feature's last bits: the device type and arithmetic
    (part of the reference-feature cache key, so CPU-made and GPU-made features never meet)."""
    return f"{device.type}: {EXTRACTION_ARITHMETIC}"


def extract_features(images: ImageSet, ext: LoadedExtractor, *, device: torch.device, batch_size: int,
                     num_workers: int = 0, label: str = "features",
                     progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
    """All of the extractor's requested layers for every image, float32 [N, D] per layer, in image order.
    Same computation as torch-fidelity's get_featuresdict_from_dataset, with our progress and error reporting,
    in EXTRACTION_ARITHMETIC (the caller's TF32 state is restored after)."""
    module = ext.module
    total, done = len(images), 0
    parts: dict[str, list[np.ndarray]] = {name: [] for name in module.get_requested_features_list()}
    if progress:
        progress(label, 0, total)
    with torch.inference_mode(), tf32(False):
        for batch in iterate_batches(images, batch_size, num_workers, pin_memory=device.type == "cuda"):
            feats = module.convert_features_tuple_to_dict(module(batch.to(device, non_blocking=True)))
            for name, value in feats.items():
                parts[name].append(value.detach().float().cpu().numpy())
            done += batch.shape[0]
            if progress:
                progress(label, done, total)
    return {name: np.concatenate(chunks, axis=0) for name, chunks in parts.items()}


def stats_of(features: np.ndarray) -> FidStats:
    """mu/sigma exactly as torch-fidelity computes them (np.mean, np.cov over float32 features)."""
    s = fid_features_to_statistics(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)))
    return FidStats(s["mu"], s["sigma"])


class ReferenceFeatures:
    """The reference's features and FID statistics for one extractor, from the cache when present; computed
    (once, all layers in one pass) and stored otherwise."""

    def __init__(self, images: ImageSet, ext: LoadedExtractor, cache: FeatureCache, key: str, meta: dict,
                 extract: Callable[[], dict[str, np.ndarray]]) -> None:
        self.images, self.ext, self.cache, self.key, self.meta = images, ext, cache, key, meta
        self._extract = extract
        self._features: dict[str, np.ndarray] = {}
        self.sources: set[str] = set()  # "cache" and/or "extracted"

    def features(self, layers: Iterable[str]) -> dict[str, np.ndarray]:
        layers = list(dict.fromkeys(layers))
        missing = []
        for layer in layers:
            if layer in self._features:
                continue
            cached = self.cache.load_features(self.key, layer)
            if cached is not None and cached.shape[0] == len(self.images):
                self._features[layer] = cached
                self.sources.add("cache")
            else:
                missing.append(layer)
        if missing:
            fresh = self._extract()  # every layer the extractor was built with, in one pass
            self.sources.add("extracted")
            for layer, value in fresh.items():
                self._features.setdefault(layer, value)
                self.cache.save_features(self.key, layer, value, self.meta)
        return {layer: self._features[layer] for layer in layers}

    def fid_stats(self, layer: str) -> FidStats:
        stats = self.cache.load_stats(self.key, layer)
        if stats is not None:
            self.sources.add("cache")
            return stats
        stats = stats_of(self.features([layer])[layer])
        self.cache.save_stats(self.key, layer, stats, self.meta)
        return stats
