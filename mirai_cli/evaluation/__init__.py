"""Evaluation: FID / IS / KID / precision-recall through torch-fidelity, reference statistics and their cache,
and feature extractors that work offline.

In-process use (e.g. from `mirai ablate`):

    from mirai_cli.evaluation import EvalSettings, evaluate
    result = evaluate("runs/x/samples.npz", "fashion-mnist", EvalSettings(metrics=("fid", "prc")))
    result.values["fid"], result.ok, result.to_dict()
"""

from mirai_cli.evaluation.cache import FeatureCache, default_cache_dir
from mirai_cli.evaluation.compute import cache_reference, compute_reference_stats, evaluate
from mirai_cli.evaluation.extractors import (
    EVAL_METRICS,
    REGISTERED_EXTRACTORS,
    ExtractorInfo,
    get_extractor,
    register_extractor,
)
from mirai_cli.evaluation.images import RESIZE_POLICY, ImageSet, open_images
from mirai_cli.evaluation.reference import Reference, open_reference
from mirai_cli.evaluation.result import EvalResult
from mirai_cli.evaluation.settings import EvalSettings
from mirai_cli.evaluation.weights import (
    INCEPTION_ENV,
    INCEPTION_URL,
    hub_inception_path,
    make_random_inception_weights,
    network_available,
)

__all__ = [
    "REGISTERED_EXTRACTORS", "INCEPTION_ENV", "INCEPTION_URL", "EVAL_METRICS", "RESIZE_POLICY", "EvalResult", "EvalSettings",
    "ExtractorInfo", "FeatureCache", "ImageSet", "Reference", "cache_reference", "compute_reference_stats", "default_cache_dir",
    "evaluate", "get_extractor", "hub_inception_path", "make_random_inception_weights", "network_available",
    "open_images", "open_reference", "register_extractor",
]
