"""`evaluate(samples, reference, settings)`: FID / IS / KID / precision-recall through torch-fidelity.

Features come from a torch-fidelity extractor (created with `create_feature_extractor`); the numbers come from
torch-fidelity's own metric functions (`fid_statistics_to_metric`, `isc_features_to_metric`,
`kid_features_to_metric`, `prc_features_to_metric`) — the pieces `torch_fidelity.calculate_metrics` is made
of, called here directly so that each side is extracted once for all metrics, the reference side can come
from stored mu/sigma (ADM batches, `mirai eval stats` files) or the cache, and precision/recall use the same
extractor as FID (Inception by default, as in the ADM evaluator) instead of torch-fidelity's VGG16 default."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from torch_fidelity.metric_prc import (
    KEY_METRIC_F_SCORE,
    KEY_METRIC_PRECISION,
    KEY_METRIC_RECALL,
    prc_features_to_metric,
)

from mirai_cli.errors import MiraiError
from mirai_cli.evaluation.cache import FeatureCache
from mirai_cli.evaluation.extractors import ExtractorInfo, LoadedExtractor, get_extractor, load_extractor
from mirai_cli.evaluation.features import (
    ProgressFn,
    ReferenceFeatures,
    extract_features,
    extraction_numerics,
    stats_of,
)
from mirai_cli.evaluation.images import ImageSet, Size, open_images
from mirai_cli.evaluation.reference import INCEPTION, Reference, open_reference
from mirai_cli.evaluation.result import VALUE_KEYS, EvalResult, eval_versions
from mirai_cli.evaluation.settings import EvalSettings
from mirai_cli.evaluation.statsfile import FidStats, check_stats_path, write_stats_file
from mirai_cli.evaluation.weights import INCEPTION_SHA256_PREFIX

PRC_FULL_MATRIX_MAX = 10_000  # above this many images per side, torch-fidelity's batched PRC saves memory


def _size(size: Size | None) -> list[int] | None:
    return [int(size[0]), int(size[1])] if size else None


def _fmt(size: Size) -> str:
    return f"{size[1]}x{size[0]}"


def _check_sizes(samples: ImageSet, ref: Reference, resize: int | None) -> None:
    if ref.image_size is None or tuple(ref.image_size) == tuple(samples.size):
        return
    hint = (f"pass --resize {max(samples.size)} to resize both (ADM centre crop)" if resize is None else
            "the statistics were made from images of another size: rebuild them with the same --resize")
    raise MiraiError(f"reference {ref.spec} has images of {_fmt(ref.image_size)} but the samples are "
                     f"{_fmt(samples.size)}: FID across resolutions is not meaningful; {hint}")


def _check_counts(metrics: tuple[str, ...], n_samples: int, ref: Reference, s: EvalSettings,
                  ref_needs_images: bool) -> None:
    """Refuse before any extraction when a metric cannot be computed from this many images."""
    n_ref = ref.count
    ref_name = f"reference {ref.spec}"
    if "fid" in metrics:
        if n_samples < 2:
            raise MiraiError(f"FID needs at least 2 samples (a covariance), got {n_samples}")
        if ref_needs_images and n_ref < 2:
            raise MiraiError(f"FID needs at least 2 reference images, {ref_name} has {n_ref}")
    if "isc" in metrics and n_samples < s.isc_splits:
        raise MiraiError(f"IS with {s.isc_splits} splits needs at least {s.isc_splits} samples, got {n_samples}; "
                         f"lower --isc-splits or add samples")
    if "kid" in metrics:
        short = [f"{what} has {n}" for what, n in (("samples", n_samples), (ref_name, n_ref)) if n < s.kid_subset_size]
        if short:
            raise MiraiError(f"KID subset size {s.kid_subset_size} is larger than the set ({'; '.join(short)}); "
                             f"lower --kid-subset-size to at most {min(n_samples, n_ref)} or add images")
    if "prc" in metrics:
        k = s.prc_neighborhood
        for what, n in (("samples", n_samples), (ref_name, n_ref)):
            if n <= k:
                raise MiraiError(f"precision/recall with k={k} neighbours needs more than {k} images; {what} has "
                                 f"{n}; lower --prc-neighborhood or add images")


def _stored_fid_stats(ref: Reference, info: ExtractorInfo, layer: str, weights_sha: str,
                      notes: list[str]) -> FidStats | None:
    """The reference's stored mu/sigma when they belong to this extractor, layer and weights."""
    if ref.stats is None:
        return None
    if ref.kind == "stats":
        if ref.stats_extractor != info.name or ref.stats_layer != layer:
            raise MiraiError(f"statistics file {ref.spec} was made with {ref.stats_extractor} (layer "
                             f"{ref.stats_layer}); evaluate with --extractor {ref.stats_extractor} or rebuild it "
                             f"with `mirai eval stats ... --extractor {info.name}`")
        if ref.stats_weights and ref.stats_weights != weights_sha:
            raise MiraiError(f"statistics file {ref.spec} was made with other {info.name} weights "
                             f"(sha256 {ref.stats_weights[:12]}, now {weights_sha[:12]}); rebuild it with "
                             f"`mirai eval stats` or use the same weights file")
        return ref.stats
    # ADM reference batch: its mu/sigma are Inception pool3 statistics.
    if info.name != INCEPTION:
        if ref.images is None:
            raise MiraiError(f"{ref.spec} holds only Inception statistics (no images); FID with {info.name} "
                             f"needs the reference images; use --extractor {INCEPTION}")
        notes.append(f"{ref.spec}: stored mu/sigma are Inception statistics; {info.name} features of its images "
                     "are used instead")
        return None
    if not weights_sha.startswith(INCEPTION_SHA256_PREFIX):
        notes.append("the reference's stored mu/sigma assume the official Inception weights, but the weights in use "
                     f"(sha256 {weights_sha[:12]}) differ: FID mixes two networks")
    return ref.stats


def _ref_features_from_file(ref: Reference, layers: set[str]) -> dict[str, np.ndarray]:
    missing = [layer for layer in layers if layer not in ref.features]
    if missing:
        raise MiraiError(f"{ref.spec} holds mu/sigma only; KID and precision/recall need reference features: "
                         "pass the reference images, or a statistics file made by `mirai eval stats REF --features`")
    return {layer: ref.features[layer] for layer in layers}


def _prepare(samples: Any, reference: Any, s: EvalSettings) -> tuple[ImageSet, Reference]:
    sample_set = samples if isinstance(samples, ImageSet) else open_images(samples, resize=s.resize)
    return sample_set, _open_ref(reference, s)


def _open_ref(reference: Any, s: EvalSettings) -> Reference:
    return reference if isinstance(reference, Reference) else open_reference(
        reference, resize=s.resize, limit=s.ref_limit, seed=s.seed)


def _extracting_side(ref: Reference, info: ExtractorInfo, layers: set[str], s: EvalSettings, cache: FeatureCache,
                     progress: ProgressFn | None) -> tuple[ReferenceFeatures, LoadedExtractor, str, str]:
    """The image reference's features for `layers`, with the extractor loaded for them: (side, extractor,
    weights sha256, reference id)."""
    device = s.torch_device()
    ext = load_extractor(info.name, sorted(layers), weights=s.inception_weights, allow_download=s.allow_download,
                         device=device)
    weights_sha = cache.memo.sha256(ext.weights_path)
    ref_id = ref.content_id(cache.memo)
    side = _reference_side(ref, ref_id, ext, cache, weights_sha, s, device, progress)
    assert side is not None
    return side, ext, weights_sha, ref_id


def _reference_side(ref: Reference, ref_id: str, ext: LoadedExtractor, cache: FeatureCache, weights_sha: str,
                    s: EvalSettings, device: torch.device, progress: ProgressFn | None) -> ReferenceFeatures | None:
    if ref.images is None:
        return None
    images = ref.images
    numerics = extraction_numerics(device)
    key = FeatureCache.key(ref_id, ext.info.name, weights_sha, numerics)
    meta = {"reference": ref.spec, "reference_id": ref_id, "extractor": ext.info.name, "weights_sha256": weights_sha,
            "numerics": numerics,
            "count": len(images), "image_size": _size(images.size), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}

    def run() -> dict[str, np.ndarray]:
        return extract_features(images, ext, device=device, batch_size=s.batch_size, num_workers=s.workers(device),
                                label="reference", progress=progress)

    return ReferenceFeatures(images, ext, cache, key, meta, run)


def evaluate(samples: str | Path | np.ndarray | ImageSet, reference: str | Path | np.ndarray | ImageSet | Reference,
             settings: EvalSettings | None = None, progress: ProgressFn | None = None) -> EvalResult:
    """Compute the asked metrics of `samples` against `reference`. Raises MiraiError (one line) for bad input;
    a metric that comes out non-finite is reported in `result.failed` (and `result.ok` is False)."""
    t_start = time.perf_counter()
    s = (settings or EvalSettings()).validated()
    info = get_extractor(s.extractor)
    device = s.torch_device()
    cache = FeatureCache(s.cache_root())
    notes: list[str] = []

    sample_set, ref = _prepare(samples, reference, s)
    _check_sizes(sample_set, ref, s.resize)
    ref_id = ref.content_id(cache.memo)
    layers = {m: info.layer(m) for m in s.metrics}
    ref_feature_layers = {layers[m] for m in s.metrics if m in ("kid", "prc")}
    # An ADM batch / stats file without images can still serve FID (and IS, which needs samples only).
    stats_only = ref.images is None
    if stats_only and ref_feature_layers:
        _ref_features_from_file(ref, ref_feature_layers)  # fails early when the file lacks them
    if stats_only and ref.kind == "stats" and ref.features:
        ref.count = next(iter(ref.features.values())).shape[0]
    _check_counts(s.metrics, len(sample_set), ref, s, ref_needs_images=not stats_only)

    t0 = time.perf_counter()
    ext = load_extractor(info.name, sorted(set(layers.values())), weights=s.inception_weights,
                         allow_download=s.allow_download, device=device)
    weights_sha = cache.memo.sha256(ext.weights_path)
    timings = {"load_extractor": time.perf_counter() - t0}

    # Reference side first: a wrong stats file should fail before the samples are extracted.
    t0 = time.perf_counter()
    ref_values: dict[str, Any] = {}
    ref_side = _reference_side(ref, ref_id, ext, cache, weights_sha, s, device, progress)
    fid_source = None
    if "fid" in s.metrics:
        stored = _stored_fid_stats(ref, info, layers["fid"], weights_sha, notes)
        if stored is not None:
            ref_values["fid_stats"], fid_source = stored, f"stored in {ref.kind} file"
        else:
            assert ref_side is not None
            ref_values["fid_stats"] = ref_side.fid_stats(layers["fid"])
    if ref_feature_layers:
        ref_values["features"] = (_ref_features_from_file(ref, ref_feature_layers) if ref_side is None
                                  else ref_side.features(ref_feature_layers))
    if ref_side is not None and fid_source is None and "fid_stats" in ref_values:
        fid_source = "cache" if ref_side.sources == {"cache"} else "computed"
    timings["reference"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    feats = extract_features(sample_set, ext, device=device, batch_size=s.batch_size,
                             num_workers=s.workers(device), label="samples", progress=progress)
    timings["samples"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    values, failed = _metrics(s, layers, feats, ref_values)
    timings["metrics"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    cache.memo.save()

    if len(sample_set) < 2048 and "fid" in s.metrics and info.name == INCEPTION:
        notes.append(f"FID from {len(sample_set)} samples is biased upwards (published numbers use 50,000)")
    names = {k: info.metric_name(k) for m in s.metrics for k in VALUE_KEYS[m]}
    return EvalResult(
        values=values, names=names, asked=list(s.metrics),
        extractor={"name": info.name, "comparable_with_published": info.comparable, "layers": layers,
                   "weights": {"origin": ext.weights_origin, "path": str(ext.weights_path), "sha256": weights_sha}},
        samples={"origin": sample_set.origin, "kind": sample_set.kind, "count": len(sample_set),
                 "image_size": _size(sample_set.size)},
        reference={"spec": ref.spec, "kind": ref.kind, "id": ref_id, "count": ref.count,
                   "image_size": _size(ref.image_size), "fid_statistics": fid_source,
                   "features": sorted(ref_side.sources) if ref_side is not None and ref_side.sources else None},
        settings={"resize": s.resize, "ref_limit": s.ref_limit, "seed": s.seed, "isc_splits": s.isc_splits,
                  "kid_subsets": s.kid_subsets, "kid_subset_size": s.kid_subset_size,
                  "prc_neighborhood": s.prc_neighborhood, "batch_size": s.batch_size, "device": str(device)},
        failed=failed, notes=notes, timings=timings,
    )


def _metrics(s: EvalSettings, layers: dict[str, str], feats: dict[str, np.ndarray],
             ref: dict[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """torch-fidelity's metric functions on the two sides' features (and stored statistics). Returns
    (values, failed): a metric whose inputs are not finite or whose linear algebra fails is reported, not raised."""
    out: dict[str, float] = {}
    failed: dict[str, str] = {}

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.float32))

    def fid() -> None:
        own = stats_of(feats[layers["fid"]]).as_fidelity()
        other: FidStats = ref["fid_stats"]
        if other.mu.shape != own["mu"].shape:
            raise MiraiError(f"reference statistics have {other.mu.shape[0]} features but the extractor gives "
                             f"{own['mu'].shape[0]}: they come from another extractor or layer")
        out["fid"] = float(fid_statistics_to_metric(own, other.as_fidelity(), verbose=False)[KEY_METRIC_FID])

    def isc() -> None:
        r = isc_features_to_metric(tensor(feats[layers["isc"]]), splits=s.isc_splits, shuffle=True, rng_seed=s.seed)
        out["isc_mean"], out["isc_std"] = r[KEY_METRIC_ISC_MEAN], r[KEY_METRIC_ISC_STD]

    def kid() -> None:
        r = kid_features_to_metric(tensor(feats[layers["kid"]]), tensor(ref["features"][layers["kid"]]),
                                   kid_subsets=s.kid_subsets, kid_subset_size=s.kid_subset_size, rng_seed=s.seed,
                                   verbose=False)
        out["kid_mean"], out["kid_std"] = r[KEY_METRIC_KID_MEAN], r[KEY_METRIC_KID_STD]

    def prc() -> None:
        f1, f2 = tensor(feats[layers["prc"]]), tensor(ref["features"][layers["prc"]])
        r = prc_features_to_metric(f1, f2, prc_neighborhood=s.prc_neighborhood,
                                   save_cpu_ram=max(len(f1), len(f2)) > PRC_FULL_MATRIX_MAX, verbose=False)
        out["precision"], out["recall"], out["f_score"] = (r[KEY_METRIC_PRECISION], r[KEY_METRIC_RECALL],
                                                           r[KEY_METRIC_F_SCORE])

    for metric, compute in (("fid", fid), ("isc", isc), ("kid", kid), ("prc", prc)):
        if metric not in s.metrics:
            continue
        bad = int((~np.isfinite(feats[layers[metric]])).any(axis=1).sum())
        if bad:
            failed[metric] = f"the extractor gave non-finite features for {bad} of {len(feats[layers[metric]])} samples"
            continue
        try:
            compute()
        except np.linalg.LinAlgError as e:
            failed[metric] = f"linear algebra failed: {e}"
        except ValueError as e:  # torch-fidelity's vassert: the inputs do not fit the metric
            raise MiraiError(f"torch-fidelity refused the inputs for {metric}: {e}") from e
    return {k: float(v) for k, v in out.items()}, failed


def cache_reference(reference: str | Path | np.ndarray | ImageSet, settings: EvalSettings | None = None,
                    progress: ProgressFn | None = None) -> bool:
    """Put the reference's features and FID statistics for `settings` in the feature cache, so that evaluations
    started next in parallel (`mirai ablate --jobs N`) read them instead of each extracting the same images.
    Nothing to do for a statistics file, a disabled cache or an already cached reference. True if it extracted."""
    s = (settings or EvalSettings()).validated()
    if s.cache_root() is None:
        return False
    info = get_extractor(s.extractor)
    layers = {info.layer(m) for m in s.metrics if m in ("fid", "kid", "prc")}
    ref = _open_ref(reference, s)
    if ref.images is None or not layers:
        return False
    cache = FeatureCache(s.cache_root())
    side, _, _, _ = _extracting_side(ref, info, layers, s, cache, progress)
    if "fid" in s.metrics:
        side.fid_stats(info.layer("fid"))
    feature_layers = {info.layer(m) for m in s.metrics if m in ("kid", "prc")}
    if feature_layers:
        side.features(feature_layers)
    cache.memo.save()  # the reference's content hash too: the parallel evaluations need not rehash it
    return "extracted" in side.sources


def compute_reference_stats(reference: str | Path | np.ndarray | ImageSet, out: str | Path,
                            settings: EvalSettings | None = None, *, with_features: bool = False,
                            progress: ProgressFn | None = None) -> dict[str, Any]:
    """Write a statistics file (mu/sigma of the FID layer; with_features: also the KID/PRC layer's features)
    for `reference`, for later `evaluate(samples, out)`. Returns the file's metadata."""
    check_stats_path(out)  # before the work: a bad name found after it wastes the computation
    s = (settings or EvalSettings()).validated()
    info = get_extractor(s.extractor)
    ref = _open_ref(reference, s)
    if ref.images is None:
        raise MiraiError(f"{ref.spec} holds statistics, not images: there is nothing to compute statistics from")
    if len(ref.images) < 2:
        raise MiraiError(f"statistics need at least 2 images, {ref.spec} has {len(ref.images)}")
    fid_layer = info.layer("fid")
    feature_layers = sorted({info.layer("kid"), info.layer("prc")}) if with_features else []
    cache = FeatureCache(s.cache_root())
    side, ext, weights_sha, ref_id = _extracting_side(ref, info, {fid_layer, *feature_layers}, s, cache, progress)
    stats = side.fid_stats(fid_layer)
    features = side.features(feature_layers) if feature_layers else {}
    meta = {"extractor": info.name, "layer": fid_layer, "weights_sha256": weights_sha,
            "weights_origin": ext.weights_origin, "count": len(ref.images), "image_size": _size(ref.images.size),
            "reference": ref.spec, "reference_kind": ref.kind, "reference_id": ref_id,
            "resize": s.resize, "ref_limit": s.ref_limit, "seed": s.seed,
            "feature_layers": feature_layers, "versions": eval_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_stats_file(out, stats, meta, features)
    cache.memo.save()
    return meta
