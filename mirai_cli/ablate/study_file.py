"""Study files: named variants of one base preset, each a few `section.key = value` settings (docs/studies/).

    description = "what the study asks"
    presets = ["tiny"]
    baseline = "base"               # the variant the others are compared with, seed by seed
    rows = "docs/study_rows.jsonl"  # optional: every finished run appended as one row (the sweep table reads them)

    [settings]                      # every variant: preset keys, the ablate section's seeds and evaluation too
    ablate.seeds = [100]
    data.val_images = 2000

    [variants.base]
    foresight.source = "none"

    [variants.enc-s8-l05]
    foresight.source = "encoder"
    foresight.lambda = 0.5

    [variants.base-6k]
    baseline = "base-6k"            # a variant may name its own baseline (then it reports in that group)
    continues = "base-3k"           # start from that variant's finished run of the same seed (lr is constant)
    foresight.source = "none"
    train.duration = 6000

Every variant's preset is validated by the schema when the file is read: an error names the file and the
variant. `mirai ablate --study FILE [--variants NAME,...] [--seeds ...]` runs the variants (and their
baselines) through the same runner and paired report as `--axis`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from mirai_cli.ablate.axes import Variant, baseline_seed_list, check_unique_names, flat_settings
from mirai_cli.config import MiraiConfig, load_config
from mirai_cli.config.loader import Layer, read_toml
from mirai_cli.errors import MiraiError

FILE_KEYS = {"description", "presets", "baseline", "rows", "settings", "variants"}
VARIANT_KEYS = {"baseline", "continues"}  # a variant's own keys; every other key is a preset setting


@dataclass(frozen=True)
class VariantSpec:
    name: str
    settings: dict[str, Any]  # preset-shaped: {"foresight": {"source": "none"}}
    baseline: str  # the variant it is compared with (itself for a baseline)
    continues: Optional[str] = None


@dataclass(frozen=True)
class StudyFile:
    path: Path
    description: str
    presets: list[str]
    settings: dict[str, Any]
    rows: Optional[str]
    variants: dict[str, VariantSpec]

    @property
    def name(self) -> str:
        return self.path.stem

    def settings_layer(self) -> Layer:
        return Layer(f"{self.path} [settings]", self.settings)

    def variant_layer(self, name: str) -> Layer:
        return Layer(f"{self.path} [variants.{name}]", self.variants[name].settings)

    def config(self, name: str, overrides: Sequence[str] = ()) -> MiraiConfig:
        """The variant's validated preset: the study's presets, its settings, the variant's, then `overrides`."""
        return load_config(list(self.presets), list(overrides), [self.settings_layer(), self.variant_layer(name)])

    def overrides(self, name: str) -> list[str]:
        """The variant's own settings as `--set` strings (for study.json and the sweep table)."""
        return [f"{key}={json.dumps(value)}" for key, value in flat_settings(self.variants[name].settings).items()]


def read_study_file(path: Path) -> StudyFile:
    """Read and check a study file; every variant's preset is validated here, before anything runs."""
    path = Path(path)
    if not path.is_file():
        raise MiraiError(f"study file {path} does not exist")
    raw = read_toml(path)
    unknown = sorted(set(raw) - FILE_KEYS)
    if unknown:
        raise MiraiError(f"{path}: unknown key {unknown[0]!r}; a study file holds {', '.join(sorted(FILE_KEYS))}")
    presets = raw.get("presets", [])
    if not isinstance(presets, list) or not all(isinstance(p, str) for p in presets):
        raise MiraiError(f"{path}: presets = {presets!r}: must be a list of preset names or paths")
    # A preset path is relative to the study file, as `extends` is to its preset.
    presets = [str(path.parent / p) if p.endswith(".toml") and not Path(p).is_absolute() else p for p in presets]
    settings = _table(raw.get("settings", {}), path, "settings")
    ablate = settings.get("ablate", {})
    for key in ("axis", "values"):
        if isinstance(ablate, dict) and key in ablate:
            raise MiraiError(f"{path} [settings]: ablate.{key} belongs to `mirai ablate --axis`; a study file names "
                             "its variants instead")
    variants = _variants(raw, path)
    study = StudyFile(path, str(raw.get("description", "")), presets, settings, raw.get("rows"), variants)
    for name in variants:
        study.config(name)  # a ConfigError names the file and the variant
    _check_continuations(study)
    return study


def _table(value: Any, path: Path, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MiraiError(f"{path}: [{where}] must be a table of settings, got {value!r}")
    return value


def _variants(raw: dict[str, Any], path: Path) -> dict[str, VariantSpec]:
    table = _table(raw.get("variants", {}), path, "variants")
    if not table:
        raise MiraiError(f"{path}: no variants; add at least one [variants.NAME] table")
    default = raw.get("baseline")
    out = {}
    for name, values in table.items():
        values = dict(_table(values, path, f"variants.{name}"))
        baseline = values.pop("baseline", default)
        continues = values.pop("continues", None)
        if baseline is None:
            raise MiraiError(f"{path} [variants.{name}]: no baseline; set baseline = \"NAME\" at the top of the file "
                             "or in the variant")
        for key, value in (("baseline", baseline), ("continues", continues)):
            if value is not None and value not in table:
                raise MiraiError(f"{path} [variants.{name}]: {key} = {value!r} is not a variant of this file; "
                                 f"variants: {', '.join(table)}")
        if table[baseline].get("baseline", default) != baseline:
            raise MiraiError(f"{path} [variants.{name}]: its baseline {baseline!r} is compared with another "
                             "variant; a baseline must be its own (baseline = its name)")
        out[name] = VariantSpec(name, values, baseline, continues)
    return out


def _check_continuations(study: StudyFile) -> None:
    """A variant continues another only where the run could be resumed: it may differ in length, evaluation and
    the like, not in what is trained."""
    from mirai_cli.engine.run_dir import unresumable_difference

    for spec in study.variants.values():
        if spec.continues is None:
            continue
        source = study.variants[spec.continues]
        if source.continues is not None:
            raise MiraiError(f"{study.path} [variants.{spec.name}]: continues {source.name}, which continues "
                             f"{source.continues}; continue the first run of the chain instead")
        difference = unresumable_difference(study.config(source.name), study.config(spec.name))
        if difference:
            raise MiraiError(f"{study.path} [variants.{spec.name}]: cannot continue {source.name}, whose runs differ "
                             f"in what is trained ({difference})")


def chosen_variants(study: StudyFile, names: Optional[Sequence[str]]) -> list[str]:
    """The variants to run: the named ones (all by default) and the baselines they are compared with, each
    baseline before its variants."""
    names = list(names or study.variants)
    missing = [n for n in names if n not in study.variants]
    if missing:
        raise MiraiError(f"{study.path}: no variant named {missing[0]!r}; variants: {', '.join(study.variants)}")
    ordered: list[str] = []
    for baseline in dict.fromkeys(study.variants[n].baseline for n in names):
        ordered += [baseline] + [n for n in dict.fromkeys(names) if study.variants[n].baseline == baseline
                                 and n != baseline]
    return ordered



def study_variants(study: StudyFile, names: Optional[Sequence[str]], overrides: Sequence[str] = ()) -> list[Variant]:
    """One Variant per chosen variant (baselines included) and seed (its ablate.seeds; a baseline also gets
    ablate.baseline_seeds - 1 more), named `<variant>-s<seed>` so that a run keeps its folder whichever seeds a
    command names. A variant that continues another carries that run (same seed) as `continues`."""

    def make(name: str, seed: int) -> Variant:
        spec = study.variants[name]
        sets = list(overrides) + [f"train.seed={seed}"]
        return Variant(f"{name}-s{seed}", name, None if spec.baseline == name else name,
                       tuple(study.overrides(name) + sets), seed, study.config(name, sets), group=name,
                       compared_with=spec.baseline, continues=make(spec.continues, seed) if spec.continues else None)

    out = []
    for name in chosen_variants(study, names):
        ablate = study.config(name, overrides).ablate
        is_baseline = study.variants[name].baseline == name
        seeds = baseline_seed_list(ablate.seeds, ablate.baseline_seeds if is_baseline else 1)
        out += [make(name, seed) for seed in seeds]
    check_unique_names(out)
    return out


def split_names(texts: Optional[Sequence[str]]) -> list[str]:
    """`--variants a,b --variants c` -> ["a", "b", "c"]."""
    return [part.strip() for text in texts or [] for part in text.split(",") if part.strip()]


def seeds_override(texts: Optional[Sequence[str]]) -> list[str]:
    """`--seeds 100,101` -> ["ablate.seeds=[100, 101]"] (none when not given): the schema checks the rest."""
    seeds = split_names(texts)
    bad = [s for s in seeds if not s.isdigit()]
    if bad:
        raise MiraiError(f"--seeds: {bad[0]!r} is not a seed; give whole numbers, e.g. --seeds 100,101,102")
    return [f"ablate.seeds=[{', '.join(seeds)}]"] if seeds else []
