"""The study report: a table like the paper's Table 1 (Markdown, CSV, JSON), a convergence plot, a sample grid
per variant, and "steps to reach the baseline's final metric" — the acceleration figure the paper headlines."""

from __future__ import annotations

import csv
import io
import math
import shutil
from pathlib import Path
from typing import Any, Optional, Sequence

from mirai_cli.ablate.axes import Variant
from mirai_cli.ablate.stats import steps_to_reach, summarize
from mirai_cli.files.atomic import atomic_path, write_json, write_text

# Metrics in table order: canonical key, lower is better?
METRICS: list[tuple[str, bool]] = [
    ("fid", True), ("val_nll", True), ("isc_mean", False), ("kid_mean", True), ("precision", False),
    ("recall", False),
]
METRIC_KEYS = [key for key, _ in METRICS]
PRIMARY = "fid"
# Metrics with a convergence curve, "steps to reach the baseline's final value" and a speed-up.
HEADLINE = ["fid", "val_nll"]


def _name(records: Sequence[dict[str, Any]], key: str) -> str:
    for record in records:
        if key in record.get("names", {}):
            return record["names"][key]
    return key


def group_variants(variants: Sequence[Variant]) -> list[tuple[str, list[Variant]]]:
    """Variants that differ only by seed form one group, named after their first member (baseline first)."""
    groups: dict[Any, list[Variant]] = {}
    for v in variants:
        groups.setdefault(None if v.is_baseline else repr(v.axis_value), []).append(v)
    ordered = sorted(groups.items(), key=lambda kv: kv[0] is not None)
    return [(members[0].name.rsplit("-s", 1)[0] if len(members) > 1 else members[0].name, members)
            for _, members in ordered]


def curve(records: Sequence[dict[str, Any]], key: str) -> dict[int, float]:
    out = {}
    for r in records:
        value = r["values"].get(key)
        if value is not None and math.isfinite(value):
            out[int(r["step"])] = float(value)
    return out


def _summary(values: Sequence[Optional[float]]) -> Optional[dict[str, Any]]:
    s = summarize([v for v in values if v is not None])
    return s.to_dict() if s else None


def group_row(name: str, members: Sequence[Variant], results: dict[str, list[dict[str, Any]]], axis: str,
              baseline_curves: dict[str, list[dict[int, float]]], baseline_final_step: Optional[int]) -> dict[str, Any]:
    runs = [results[v.name] for v in members if results.get(v.name)]
    first = members[0]
    row: dict[str, Any] = {"variant": name, "label": first.label.split(" (seed")[0],
                           axis: "baseline" if first.is_baseline else first.axis_value,
                           "seeds": [v.seed for v in members if results.get(v.name)],
                           "step": max(r[-1]["step"] for r in runs)}
    for key, _ in METRICS:
        row[key] = _summary([r[-1]["values"].get(key) for r in runs])
    for key in HEADLINE:
        curves = [curve(r, key) for r in runs]
        by_step = {}
        for step in sorted(set().union(*curves)):
            s = summarize([c[step] for c in curves if step in c])
            by_step[step] = s.to_dict() if s else None
        row[f"{key}_by_step"] = by_step
        reach = steps_to_reach(baseline_curves[key], curves) if baseline_curves.get(key) else None
        row[f"{key}_reach"] = reach.to_dict() if reach else None
        speed = reach.speedup(baseline_final_step) if reach and baseline_final_step else (None, None, None)
        row[f"{key}_speedup"] = {"value": speed[0], "ci95": [speed[1], speed[2]]}
    return row


def build_rows(variants: Sequence[Variant], results: dict[str, list[dict[str, Any]]], axis: str) -> dict[str, Any]:
    """Plain data of the report (what report.json holds): one row per group of seeds, one per run."""
    groups = group_variants(variants)
    baseline_runs = [results[v.name] for v in groups[0][1] if results.get(v.name)] if groups else []
    baseline_curves = {key: [curve(r, key) for r in baseline_runs] for key in HEADLINE}
    final_step = max((r[-1]["step"] for r in baseline_runs), default=None)
    rows = [group_row(name, members, results, axis, baseline_curves, final_step)
            for name, members in groups if any(results.get(v.name) for v in members)]
    runs = [{"variant": v.name, "seed": v.seed, "step": results[v.name][-1]["step"],
             **{key: results[v.name][-1]["values"].get(key) for key in METRIC_KEYS}}
            for v in variants if results.get(v.name)]
    all_records = [r for recs in results.values() for r in recs]
    base = rows[0] if rows and rows[0][axis] == "baseline" else None
    return {
        "axis": axis, "primary": PRIMARY, "primary_name": _name(all_records, PRIMARY),
        "names": {key: _name(all_records, key) for key in METRIC_KEYS},
        "steps": sorted({r["step"] for r in all_records}), "baseline_final_step": final_step,
        "baseline": {key: base[key] for key in HEADLINE} if base else None,
        "rows": rows, "runs": runs,
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


def _interval(low: Any, high: Any, upper_open: bool = True) -> str:
    if low is None and high is None:
        return "-"
    return f"[{_fmt(low)}, {_fmt(high) if high is not None else ('never' if upper_open else '-')}]"


def _mean_sd(summary: Optional[dict[str, Any]]) -> str:
    if not summary:
        return "-"
    return _fmt(summary["mean"]) + (f" ± {_fmt(summary['sd'])}" if summary["sd"] is not None else "")


def _reach(row: dict[str, Any], key: str) -> tuple[str, str]:
    reach, speed = row[f"{key}_reach"], row[f"{key}_speedup"]
    if not reach:
        return "-", "-"
    steps = _fmt(reach["steps"]) if reach["steps"] is not None else "never"
    up = (_fmt(speed["value"]) + "x") if speed["value"] else "-"
    low, high = speed["ci95"]
    return (f"{steps} {_interval(*reach['ci95'])}",
            f"{up} [{_fmt(low) if low else '0'}, {_fmt(high) if high else '-'}]")


def table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per variant (seeds pooled): mean ± sd, 95% t interval, curve means, steps to baseline."""
    axis, names = report["axis"], report["names"]
    steps = report["steps"]
    header = ["variant", axis, "seeds", "step"]
    for key in HEADLINE:
        header += [f"{names[key]} mean ± sd", f"{names[key]} 95% CI"]
    header += [names[k] for k in METRIC_KEYS if k not in HEADLINE]
    header += [f"{report['primary_name']} @{s}" for s in steps]
    for key in HEADLINE:
        header += [f"steps to baseline {names[key]} [95% CI]", f"speed-up {names[key]} [95% CI]"]
    body = []
    for row in report["rows"]:
        line = [row["variant"], _fmt(row[axis]), str(len(row["seeds"])), _fmt(row["step"])]
        for key in HEADLINE:
            summary = row[key]
            line += [_mean_sd(summary), _interval(*summary["ci95"], upper_open=False) if summary else "-"]
        line += [_fmt(row[k]["mean"]) if row[k] else "-" for k in METRIC_KEYS if k not in HEADLINE]
        by_step = row[f"{PRIMARY}_by_step"]
        line += [_fmt(by_step[s]["mean"]) if by_step.get(s) else "-" for s in steps]
        for key in HEADLINE:
            line += list(_reach(row, key))
        body.append(line)
    return header, body


def run_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["run", "seed", "step"] + [report["names"][k] for k in METRIC_KEYS]
    body = [[r["variant"], str(r["seed"]), str(r["step"])] + [_fmt(r.get(k)) for k in METRIC_KEYS]
            for r in report["runs"]]
    return header, body


def verdicts(report: dict[str, Any]) -> list[str]:
    """Per variant and headline metric: the final difference in baseline sd and the speed-up, in words."""
    base = report.get("baseline") or {}
    lines = []
    for row in report["rows"][1:]:
        for key in HEADLINE:
            b, v = base.get(key), row[key]
            if not b or not v or b["sd"] in (None, 0):
                continue
            gain = (b["mean"] - v["mean"]) / b["sd"]
            speed = row[f"{key}_speedup"]["value"]
            lines.append(f"- {row['variant']}, {report['names'][key]}: final {_fmt(v['mean'])} vs baseline "
                         f"{_fmt(b['mean'])} ± {_fmt(b['sd'])} (sd, n={b['n']}): {gain:+.2f} baseline sd "
                         f"({'better' if gain > 0 else 'worse'}); speed-up {_fmt(speed) + 'x' if speed else 'none'}")
    return lines


def _markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in body]


def to_markdown(report: dict[str, Any]) -> str:
    lines = _markdown_table(*table_rows(report))
    lines += ["", "Runs:", ""] + _markdown_table(*run_rows(report))
    lines += ["", f"Axis `{report['axis']}`; sample metrics from {report['extractor']} features; lower "
              f"{report['primary_name']} and validation NLL (nats per token on held-out images) are better. "
              "Intervals: 95% t interval of the seed mean; steps to baseline: the variant's seed-mean curve "
              "reaches the baseline's seed-mean final value (linear between evaluation points), with a 95% "
              "bootstrap interval over seeds ('never': not reached within the run in over 2.5% of resamples)."]
    lines += verdicts(report)
    if report["extractor"] and report["extractor"] != "inception-v3-compat":
        lines.append("Numbers from a non-Inception extractor are not comparable with published FID.")
    return "\n".join(lines) + "\n"


def to_csv(report: dict[str, Any]) -> str:
    header, body = table_rows(report)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(body)
    return buffer.getvalue()


def plot_convergence(report: dict[str, Any], path: Path) -> Path:
    """One panel per headline metric: seed-mean curve per variant with its 95% interval as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in HEADLINE if any(row[f"{k}_by_step"] for row in report["rows"])]
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(6.0 * max(1, len(keys)), 4.2), dpi=120, squeeze=False)
    for ax, key in zip(axes[0], keys):
        for row in report["rows"]:
            points = sorted((s, v) for s, v in row[f"{key}_by_step"].items() if v)
            xs = [s for s, _ in points]
            ys = [v["mean"] for _, v in points]
            style = "--" if row[report["axis"]] == "baseline" else "-"
            line, = ax.plot(xs, ys, style, marker="o", ms=3, label=f"{row['label']} (n={len(row['seeds'])})")
            band = [(s, v["ci95"]) for s, v in points if v["ci95"][0] is not None]
            if band:
                ax.fill_between([s for s, _ in band], [c[0] for _, c in band], [c[1] for _, c in band],
                                color=line.get_color(), alpha=0.15)
        base = (report.get("baseline") or {}).get(key)
        if base:
            ax.axhline(base["mean"], color="grey", lw=0.8, ls=":", label="baseline final (mean)")
        ax.set_xlabel("training step")
        ax.set_ylabel(report["names"][key] + " (lower is better)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"mirai ablate: {report['axis']} (bands: 95% interval over seeds)")
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
    plot_convergence(report, root / "convergence.png")
    for row in report["runs"]:
        grid = root / "runs" / row["variant"] / "samples" / f"step_{row['step']:08d}" / "grid.png"
        if grid.is_file():
            shutil.copyfile(grid, root / f"grid_{row['variant']}.png")
    return report
