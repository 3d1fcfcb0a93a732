"""What an evaluation returns and writes: values under the extractor's metric names, and the facts that make
a number reproducible (extractor and weights, counts, reference id, image size, versions)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirai_cli.files.atomic import write_json
from mirai_cli.files.manifest import versions as manifest_versions

# Canonical value keys per asked metric (torch-fidelity computes them together).
VALUE_KEYS = {"fid": ("fid",), "isc": ("isc_mean", "isc_std"), "kid": ("kid_mean", "kid_std"),
               "prc": ("precision", "recall", "f_score")}
NOT_COMPARABLE = ("computed with {extractor} features: not comparable with published FID/IS/KID/precision/recall, "
                  "which use Inception-v3 (inception-v3-compat)")


def eval_versions() -> dict[str, str]:
    return manifest_versions("torch-fidelity", "timm")


@dataclass
class EvalResult:
    values: dict[str, float]  # canonical keys: fid, isc_mean, isc_std, kid_mean, kid_std, precision, recall, f_score
    names: dict[str, str]  # canonical key -> display name (FID, or FD-effnet-lite2)
    asked: list[str]  # fid / isc / kid / prc
    extractor: dict[str, Any]
    samples: dict[str, Any]
    reference: dict[str, Any]
    settings: dict[str, Any]
    failed: dict[str, str] = field(default_factory=dict)  # asked metric -> why it has no finite value
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=eval_versions)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def __post_init__(self) -> None:
        for metric in self.asked:
            keys = VALUE_KEYS[metric]
            bad = [k for k in keys if k not in self.values or not math.isfinite(self.values[k])]
            if bad and metric not in self.failed:
                self.failed[metric] = f"not a finite number: {', '.join(f'{k}={self.values.get(k)}' for k in bad)}"

    @property
    def ok(self) -> bool:
        """Every asked metric has a finite value."""
        return not self.failed

    @property
    def comparable(self) -> bool:
        return bool(self.extractor.get("comparable_with_published"))

    def named(self) -> dict[str, float]:
        """Display name -> value, in the order asked."""
        return {self.names[k]: self.values[k] for m in self.asked for k in VALUE_KEYS[m] if k in self.values}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metrics": self.named(),
            "values": dict(self.values),
            "names": dict(self.names),
            "asked": list(self.asked),
            "ok": self.ok,
            "failed": dict(self.failed),
            "extractor": dict(self.extractor),
            "image_size": self.samples.get("image_size"),
            "samples": dict(self.samples),
            "reference": dict(self.reference),
            "settings": dict(self.settings),
            "notes": list(self.notes),
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "versions": dict(self.versions),
            "created": self.created,
        }
        if not self.comparable:
            out["comparability"] = NOT_COMPARABLE.format(extractor=self.extractor.get("name"))
        return out

    def write_json(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())


def fmt_value(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return str(value)
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
