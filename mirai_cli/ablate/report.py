"""The study report: a table like the paper's Table 1 (Markdown, CSV, JSON), a convergence plot, a sample grid
per variant, and "steps to reach the baseline's final metric" — the acceleration figure the paper headlines."""

from __future__ import annotations

import csv
import io
import math
import shutil
import statistics
from pathlib import Path
from typing import Any, Optional, Sequence

from mirai_cli.ablate.axes import Variant
from mirai_cli.fileio import atomic_path, write_json, write_text

# Metrics in table order: canonical key, lower is better?
METRICS: list[tuple[str, bool]] = [
    ("fid", True), ("isc_mean", False), ("kid_mean", True), ("precision", False), ("recall", False),
]
PRIMARY = "fid"


def _name(records: Sequence[dict[str, Any]], key: str) -> str:
    for record in records:
        if key in record.get("names", {}):
            return record["names"][key]
    return key


def steps_to_reach(records: Sequence[dict[str, Any]], target: float, key: str = PRIMARY, lower_is_better: bool = True
                   ) -> Optional[int]:
    """First evaluation step whose metric is at least as good as `target` (None: never)."""
    for record in sorted(records, key=lambda r: r["step"]):
        value = record["values"].get(key)
        if value is None or not math.isfinite(value):
            continue
        if (value <= target) if lower_is_better else (value >= target):
            return int(record["step"])
    return None


def build_rows(variants: Sequence[Variant], results: dict[str, list[dict[str, Any]]], axis: str) -> dict[str, Any]:
    """Plain data of the report (what report.json holds)."""
    baselines = [v for v in variants if v.is_baseline]
    base_finals = [results[v.name][-1]["values"].get(PRIMARY) for v in baselines if results.get(v.name)]
    base_finals = [x for x in base_finals if x is not None and math.isfinite(x)]
    baseline_final = base_finals[0] if base_finals else None
    noise = statistics.pstdev(base_finals) if len(base_finals) > 1 else None
    all_records = [r for recs in results.values() for r in recs]
    steps = sorted({r["step"] for r in all_records})
    rows = []
    for v in variants:
        records = results.get(v.name, [])
        if not records:
            continue
        final = records[-1]
        row: dict[str, Any] = {"variant": v.name, "label": v.label, axis: "baseline" if v.is_baseline else v.axis_value,
                               "seed": v.seed, "step": final["step"]}
        for key, _ in METRICS:
            row[key] = final["values"].get(key)
        row["by_step"] = {int(r["step"]): r["values"].get(PRIMARY) for r in records}
        reach = steps_to_reach(records, baseline_final) if baseline_final is not None else None
        row["steps_to_baseline_final"] = reach
        base_step = baselines and results.get(baselines[0].name) and results[baselines[0].name][-1]["step"]
        row["speedup"] = (base_step / reach) if reach else None
        rows.append(row)
    return {
        "axis": axis, "primary": PRIMARY, "primary_name": _name(all_records, PRIMARY),
        "names": {key: _name(all_records, key) for key, _ in METRICS}, "steps": steps,
        "baseline_final": baseline_final, "baseline_seed_std": noise, "rows": rows,
        "extractor": next((r.get("extractor") for r in all_records if r.get("extractor")), None),
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    axis = report["axis"]
    steps = report["steps"]
    header = ["variant", axis, "step"] + [report["names"][k] for k, _ in METRICS] \
        + [f"{report['primary_name']} @{s}" for s in steps] + [f"steps to baseline {report['primary_name']}", "speed-up"]
    body = []
    for row in report["rows"]:
        body.append([row["variant"], _fmt(row[axis]), _fmt(row["step"])] + [_fmt(row[k]) for k, _ in METRICS]
                    + [_fmt(row["by_step"].get(s)) for s in steps]
                    + [_fmt(row["steps_to_baseline_final"]), _fmt(row["speedup"]) + ("x" if row["speedup"] else "")])
    return header, body


def to_markdown(report: dict[str, Any]) -> str:
    header, body = table_rows(report)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    notes = [f"\nAxis `{report['axis']}`; metrics from {report['extractor']} features (lower "
             f"{report['primary_name']} is better)."]
    if report.get("baseline_seed_std") is not None:
        notes.append(f"Baseline seed-to-seed std of the final {report['primary_name']}: "
                     f"{report['baseline_seed_std']:.4g} (differences below ~2x this are noise).")
    if report["extractor"] and report["extractor"] != "inception-v3-compat":
        notes.append("Numbers from a non-Inception extractor are not comparable with published FID.")
    return "\n".join(lines) + "\n" + "\n".join(notes) + "\n"


def to_csv(report: dict[str, Any]) -> str:
    header, body = table_rows(report)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(body)
    return buffer.getvalue()


def plot_convergence(report: dict[str, Any], results: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for row in report["rows"]:
        records = results[row["variant"]]
        xs = [r["step"] for r in records]
        ys = [r["values"].get(PRIMARY) for r in records]
        style = "--" if row[report["axis"]] == "baseline" else "-"
        ax.plot(xs, ys, style, marker="o", label=row["label"])
    if report.get("baseline_final") is not None:
        ax.axhline(report["baseline_final"], color="grey", lw=0.8, ls=":", label="baseline final")
    ax.set_xlabel("training step")
    ax.set_ylabel(report["primary_name"] + " (lower is better)")
    ax.set_title(f"mirai ablate: {report['axis']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def write_report(root: Path, variants: Sequence[Variant], results: dict[str, list[dict[str, Any]]], axis: str) -> dict[str, Any]:
    """Write report.md/.csv/.json, convergence.png and one sample grid per variant; return the report data."""
    report = build_rows(variants, results, axis)
    root.mkdir(parents=True, exist_ok=True)
    write_text(root / "report.md", to_markdown(report))
    write_text(root / "report.csv", to_csv(report))
    write_json(root / "report.json", report)
    plot_convergence(report, results, root / "convergence.png")
    for row in report["rows"]:
        grid = root / "runs" / row["variant"] / "samples" / f"step_{row['step']:08d}" / "grid.png"
        if grid.is_file():
            shutil.copyfile(grid, root / f"grid_{row['variant']}.png")
    return report
