"""The preset's `eval` section -> EvalSettings and the reference (shared by `mirai eval` and `mirai ablate`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mirai_cli.config import MiraiConfig, load_config
from mirai_cli.errors import MiraiError
from mirai_cli.evaluation.settings import EvalSettings

SAMPLE_MANIFEST = "sample_manifest.json"  # what `mirai sample` writes into its output folder
RUN_PRESET = "preset.toml"  # what `mirai train` writes into its run folder

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


def run_preset_of_samples(samples: str | Path) -> Path | None:
    """The preset of the run a `mirai sample` folder (or its samples.npz) came from: the folder's manifest names
    the checkpoint; its run folder holds preset.toml. None when the samples do not say."""
    folder = Path(samples)
    folder = folder.parent if folder.is_file() else folder
    manifest = folder / SAMPLE_MANIFEST
    if not manifest.is_file():
        return None
    try:
        checkpoint = json.loads(manifest.read_text()).get("checkpoint")
    except (OSError, ValueError, AttributeError):
        return None
    candidates = [folder, *folder.parents[:3]]
    if isinstance(checkpoint, str):
        ckpt = Path(checkpoint)
        candidates = [ckpt, *ckpt.parents[:3], *candidates]
    return next((c / RUN_PRESET for c in candidates if (c / RUN_PRESET).is_file()), None)


@dataclass(frozen=True)
class ImpliedEval:
    """What the run a sample folder came from implies. `problem`: why its preset did not load (a run from
    another version); then `settings` and `reference` are None and the command line must say what is needed."""

    preset: Path
    settings: EvalSettings | None = None
    reference: str | None = None
    problem: str | None = None


def implied_eval(samples: str | Path) -> ImpliedEval | None:
    """The settings and reference implied by the run a sample folder came from; None when the folder names no
    run. A run preset that does not load is reported in the result, not raised: options may supply the rest."""
    preset = run_preset_of_samples(samples)
    if preset is None:
        return None
    try:
        config = load_config([str(preset)])
    except MiraiError as exc:
        return ImpliedEval(preset, problem=str(exc))
    settings, reference = eval_settings_from_config(config)
    return ImpliedEval(preset, settings, reference)
