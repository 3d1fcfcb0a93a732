"""The preset's `eval` section -> EvalSettings and the reference (shared by `mirai eval` and `mirai ablate`)."""

from __future__ import annotations

from mirai_cli.config import MiraiConfig
from mirai_cli.evaluation.settings import EvalSettings

# Fields the eval section may grow (see the evaluation report); read when present so presets can set them.
OPTIONAL_FIELDS = ("kid_subsets", "resize", "ref_limit", "seed", "device", "num_workers", "cache_dir", "allow_download")


def eval_settings_from_config(config: MiraiConfig) -> tuple[EvalSettings, str]:
    """Settings from `config.eval`; the reference defaults to the data source (a built-in data set means its
    train split)."""
    ev = config.eval
    settings = EvalSettings(
        metrics=tuple(ev.metrics), extractor=ev.extractor, inception_weights=ev.inception_weights,
        kid_subset_size=ev.kid_subset_size, isc_splits=ev.isc_splits, prc_neighborhood=ev.prc_neighborhood,
        batch_size=ev.batch_size,
        **{name: getattr(ev, name) for name in OPTIONAL_FIELDS if getattr(ev, name, None) is not None},
    )
    reference: str | None = ev.reference or config.data.source
    return settings, reference
