"""A study's variants (docs/usage.md, "Ablate"): one base preset x one axis (the axes and the setting each one
sets: `registries.ABLATE_AXES`) x the study's seeds.

A variant is the base preset plus a few `--set` overrides: the axis's setting, the fields that value fixes
with it (`derived_overrides`), the teacher when the axis needs one, and `train.seed`. The baseline
(foresight.source = "none") runs on every seed of the study, plus `ablate.baseline_seeds - 1` more (the seeds
after the largest study seed: `baseline_seed_list`), so every
table has the number to beat and its noise. For axes that only mean something with a teacher (level, layout,
k, depth, lambda, warmup) the method comes from the base preset, or Mirai-E when the base has none; the
encoder and encoder_layer axes use Mirai-I, and target_norm uses Mirai-I when the base has no teacher.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

from mirai_cli.config import MiraiConfig, load_config
from mirai_cli.config.registries import ABLATE_AXES, ENCODER_LAYERS
from mirai_cli.errors import MiraiError

Value = Union[int, float, str]


@dataclass(frozen=True)
class Variant:
    name: str  # folder-safe, e.g. "k-3" or "baseline"
    label: str  # for tables and plots, e.g. "k = 3"
    axis_value: Optional[Value]  # None for the baseline
    overrides: tuple[str, ...]  # on top of the base presets and the study's own overrides
    seed: int = 0
    config: Optional[MiraiConfig] = field(default=None, compare=False)
    group: Optional[str] = None  # a study file's variant name, shared by its seeds (an axis study: None)
    compared_with: Optional[str] = None  # a study file's variant: the group of its baseline
    continues: Optional["Variant"] = None  # a study file's variant: starts from this finished run (same seed)

    @property
    def is_baseline(self) -> bool:
        return self.axis_value is None


def baseline_seed_list(seeds: Sequence[int], baseline_seeds: int) -> list[int]:
    """The baseline's seeds: the study's (in the order given), then `baseline_seeds - 1` more after the largest
    (max + 1, max + 2, ...), so that no seed, and no run folder `<name>-s<seed>`, comes twice whatever the order."""
    extra = max(seeds) + 1
    return list(seeds) + list(range(extra, extra + max(0, baseline_seeds - 1)))


def check_unique_names(variants: Sequence["Variant"]) -> None:
    """Each variant is one run folder: two of the same name would be one run counted twice."""
    seen: set[str] = set()
    for v in variants:
        if v.name in seen:
            raise MiraiError(f"two variants are named {v.name!r} (a value or seed given twice?); give each value "
                             "and seed once")
        seen.add(v.name)


def default_values(axis: str, base: MiraiConfig) -> list[Value]:
    """The paper's sweep of an axis, adapted to the base model's depth."""
    layers = base.model.layers or 1
    if axis == "level":
        return ["output", "internal"]
    if axis == "layout":
        return ["1d", "2d"]
    if axis == "k":
        return [1, 3, 9] if base.foresight.layout == "2d" else [1, 3, 5]
    if axis == "source":
        return ["ema", "encoder"]
    if axis == "depth":
        return sorted({max(1, layers // 3), max(1, round(2 * layers / 3)), layers})
    if axis == "lambda":
        return [0.5, 1.0, 2.0, 4.0]
    if axis == "encoder":
        return ["dinov2-vit-s", "dinov2-vit-b", "dinov2-vit-l"]
    if axis == "warmup":
        return [0, "5ep", "15ep"]
    if axis == "encoder_layer":
        layers = ENCODER_LAYERS[base.foresight.encoder]
        if not layers:
            raise MiraiError(f"the encoder_layer axis needs an EfficientNet or DINOv2 encoder, not {base.foresight.encoder}")
        if base.foresight.encoder.startswith("efficientnet"):
            return [8, 16, 32]  # an 8x8 grid: 64, 128 and 256 px inputs
        return sorted({max(1, len(layers) // 3), max(1, 2 * len(layers) // 3), len(layers)})
    if axis == "target_norm":
        return ["none", "layer", "spatial"]
    raise MiraiError(f"unknown ablation axis '{axis}'; choose one of {', '.join(ABLATE_AXES)}")


def method_for(axis: str, base: MiraiConfig) -> str:
    if axis in ("encoder", "encoder_layer"):
        return "encoder"
    if base.foresight.source != "none":
        return base.foresight.source
    return "encoder" if axis == "target_norm" else "ema"


def derived_overrides(axis: str, value: Value, base: MiraiConfig) -> list[str]:
    """Fields an axis value fixes besides its own: an EfficientNet stage's input size (stride x grid)."""
    if axis == "encoder_layer" and base.foresight.encoder.startswith("efficientnet"):
        return [f"foresight.encoder_resolution={int(value) * base.grid}"]
    if axis == "encoder" and base.foresight.encoder_layer is not None:
        return ["foresight.encoder_layer=0"]  # layers are per encoder: each one's default (last) layer
    return []


def _toml_value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return f'"{value}"'


def _slug(value: Value) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(value)).strip("-")


def coerce_values(axis: str, values: Sequence[Any]) -> list[Value]:
    """`--values 1,3,9` arrives as strings: numbers become numbers where the axis takes numbers."""
    out: list[Value] = []
    slugs: dict[str, Any] = {}
    for raw in values:
        value: Value = raw
        if isinstance(raw, str):
            text = raw.strip()
            if axis in ("k", "depth", "encoder_layer") and text.isdigit():
                value = int(text)
            elif axis == "lambda":
                try:
                    value = float(text)
                except ValueError:
                    raise MiraiError(f"--values for lambda must be numbers, got {text!r}") from None
            elif axis == "warmup" and text.isdigit():
                value = int(text)
            else:
                value = text
        if _slug(value) in slugs:  # the slug names the variant's folder
            raise MiraiError(f"--values / ablate.values for {axis}: {value!r} repeats {slugs[_slug(value)]!r}; give "
                             "each value once")
        slugs[_slug(value)] = value
        out.append(value)
    if not out:
        raise MiraiError(f"--values for {axis} is empty")
    return out


def expand(
    presets: Sequence[str],
    overrides: Sequence[str],
    axis: str,
    values: Optional[Sequence[Any]] = None,
    seeds: Optional[Sequence[int]] = None,
    baseline_seeds: int = 1,
) -> list[Variant]:
    """Variants of a study: the baseline (once per seed, plus `baseline_seeds - 1` extra seeds to measure the
    noise), then one per axis value and seed. Each variant's config is validated here, so a bad value fails
    before anything trains."""
    if axis not in ABLATE_AXES:
        raise MiraiError(f"unknown ablation axis '{axis}'; choose one of {', '.join(ABLATE_AXES)}")
    base = load_config(list(presets), list(overrides))
    chosen = coerce_values(axis, values) if values else default_values(axis, base)
    seeds = list(seeds or base.ablate.seeds)
    method = method_for(axis, base)
    variants: list[Variant] = []

    def make(name: str, label: str, value: Optional[Value], sets: list[str], seed: int) -> Variant:
        sets = sets + [f"train.seed={seed}"]
        try:
            config = load_config(list(presets), list(overrides) + sets)
        except MiraiError as exc:
            raise MiraiError(f"ablation variant {label}: {exc}") from None
        suffix = f"-s{seed}" if len(seeds) > 1 or seed != seeds[0] else ""
        return Variant(name + suffix, label + (f" (seed {seed})" if suffix else ""), value, tuple(sets), seed, config)

    for seed in baseline_seed_list(seeds, baseline_seeds):
        variants.append(make("baseline", "baseline", None, ["foresight.source=\"none\""], seed))
    for value in chosen:
        if axis == "source" and value == "none":
            continue  # the baseline is already there
        sets = [] if axis == "source" else [f"foresight.source=\"{method}\""]
        if axis == "k" and base.foresight.offsets is not None:
            raise MiraiError("the k axis needs foresight.offsets unset (explicit offsets fix the heads)")
        if axis == "lambda" and isinstance(base.foresight.lambda_, list):
            sets.append("foresight.lambda=" + _toml_value(value))
        else:
            sets.append(f"{ABLATE_AXES[axis]}={_toml_value(value)}")
        sets += derived_overrides(axis, value, base)
        for seed in seeds:
            variants.append(make(f"{axis}-{_slug(value)}", f"{axis} = {value}", value, sets, seed))
    check_unique_names(variants)
    return variants


def differing_fields(variants: Sequence[Variant]) -> list[str]:
    """Dotted preset fields whose values differ between variants (what `--dry-run` shows)."""
    dumps = [flat_settings(v.config.model_dump(by_alias=True)) for v in variants if v.config is not None]
    keys = sorted(set().union(*dumps)) if dumps else []
    return [k for k in keys if len({repr(d.get(k)) for d in dumps}) > 1]


def flat_settings(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flat_settings(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
