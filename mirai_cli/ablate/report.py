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
from mirai_cli.ablate.stats import paired_gains, paired_speedups, shared_seeds, steps_to_reach, summarize
from mirai_cli.errors import MiraiError
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
LOWER_IS_BETTER = dict(METRICS)


def _name(records: Sequence[dict[str, Any]], key: str) -> str:
    for record in records:
        if key in record.get("names", {}):
            return record["names"][key]
    return key


def group_variants(variants: Sequence[Variant]) -> list[tuple[str, list[Variant]]]:
    """Variants that differ only by seed form one group, named after their first member (baseline first)."""
    groups: dict[Any, list[Variant]] = {}
    for v in variants:
        groups.setdefault(v.group or (None if v.is_baseline else repr(v.axis_value)), []).append(v)
    ordered = sorted(groups.values(), key=lambda members: not members[0].is_baseline)
    return [(members[0].group or (members[0].name.rsplit("-s", 1)[0] if len(members) > 1 else members[0].name),
             members) for members in ordered]


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


# An arm: one group of seeds. {"name", "label", "value", "baseline": bool, "runs": [{"variant", "seed", "evals"}]},
# where "evals" is the run's evaluation records [{"step", "values": {metric: value}}]. Built from a finished study
# or, for a later analysis, from report.json alone (its runs hold every evaluation).

def arms_from_variants(variants: Sequence[Variant], results: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    arms = []
    for name, members in group_variants(variants):
        runs = [{"variant": v.name, "seed": v.seed, "evals": [{"step": int(r["step"]), "values": dict(r["values"])}
                                                           for r in results[v.name]]}
                for v in members if results.get(v.name)]
        if runs:
            arms.append({"name": name, "label": members[0].label.split(" (seed")[0], "value": members[0].axis_value,
                         "baseline": members[0].is_baseline, "runs": runs})
    return arms


def arms_from_report(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The arms of a report.json (as written: JSON keys and all), for re-analysing it without the run folders."""
    if any("evals" not in run for run in report["runs"]):
        raise MiraiError("this report.json was written before reports kept every run's curve; rerun the same "
                         "`mirai ablate` command (finished work is kept) to rewrite it")
    arms: dict[str, dict[str, Any]] = {}
    for run in report["runs"]:
        arm = arms.setdefault(run["group"], {"name": run["group"], "label": run["label"], "value": run["value"],
                                             "baseline": run["baseline"], "runs": []})
        arm["runs"].append({"variant": run["variant"], "seed": run["seed"], "evals": run["evals"]})
    return sorted(arms.values(), key=lambda a: not a["baseline"])


def paired_block(base_runs: dict[int, list[dict[str, Any]]], runs: Sequence[dict[str, Any]], key: str
                 ) -> dict[str, Any]:
    """A variant against the baseline runs of the same seeds: per-step paired gains, the final one, per-pair
    speed-ups."""
    seeds = [r["seed"] for r in runs if r["seed"] in base_runs]
    base = [curve(base_runs[s], key) for s in seeds]
    var = [curve(r["evals"], key) for r in runs if r["seed"] in base_runs]
    gains = paired_gains(base, var, LOWER_IS_BETTER[key])
    final = max(gains) if gains else None
    return {"seeds": seeds, "gain_by_step": {s: g.to_dict() for s, g in gains.items()}, "final_step": final,
            "final_gain": gains[final].to_dict() if final is not None else None,
            "speedup": paired_speedups(base, var, LOWER_IS_BETTER[key]).to_dict()}


def arm_row(arm: dict[str, Any], axis: str, baseline_curves: dict[str, list[dict[int, float]]],
            base_runs: Optional[dict[int, list[dict[str, Any]]]]) -> dict[str, Any]:
    runs = [r["evals"] for r in arm["runs"]]
    row: dict[str, Any] = {"variant": arm["name"], "label": arm["label"],
                           axis: "baseline" if arm["baseline"] else arm["value"],
                           "seeds": [r["seed"] for r in arm["runs"]], "step": max(r[-1]["step"] for r in runs)}
    for key, _ in METRICS:
        row[key] = _summary([r[-1]["values"].get(key) for r in runs])
    for key in HEADLINE:
        curves = [curve(r, key) for r in runs]
        by_step = {}
        for step in sorted(set().union(*curves)):
            s = summarize([c[step] for c in curves if step in c])
            by_step[step] = s.to_dict() if s else None
        row[f"{key}_by_step"] = by_step
        reach = steps_to_reach(baseline_curves[key], curves, LOWER_IS_BETTER[key]) if baseline_curves.get(key) else None
        row[f"{key}_reach"] = reach.to_dict() if reach else None
        row[f"{key}_speedup"] = reach.speedup_dict() if reach else {"value": None, "ci95": [None, None]}
        row[f"{key}_paired"] = (paired_block(base_runs, arm["runs"], key)
                                if base_runs is not None and any(curves) else None)
    return row


def build_rows(variants: Sequence[Variant], results: dict[str, list[dict[str, Any]]], axis: str) -> dict[str, Any]:
    """Plain data of the report (what report.json holds): one row per group of seeds, one per run (with its
    every evaluation, so that `reanalyze` can redo the report from report.json alone)."""
    all_records = [r for recs in results.values() for r in recs]
    return build_report(arms_from_variants(variants, results), axis,
                        {key: _name(all_records, key) for key in METRIC_KEYS},
                        next((r.get("extractor") for r in all_records if r.get("extractor")), None))


def reanalyze(report: dict[str, Any]) -> dict[str, Any]:
    """The report recomputed from a report.json's runs (e.g. with newer statistics), without the run folders."""
    return build_report(arms_from_report(report), report["axis"], report["names"], report["extractor"])


def build_report(arms: Sequence[dict[str, Any]], axis: str, names: dict[str, str], extractor: Optional[str]
                 ) -> dict[str, Any]:
    base_arm = arms[0] if arms and arms[0]["baseline"] else None
    baseline_runs = [r["evals"] for r in base_arm["runs"]] if base_arm else []
    baseline_curves = {key: [curve(r, key) for r in baseline_runs] for key in HEADLINE}
    base_seeds = [r["seed"] for r in base_arm["runs"]] if base_arm else []
    paired = base_arm is not None and all(shared_seeds(base_seeds, [r["seed"] for r in a["runs"]]) for a in arms)
    base_by_seed = {r["seed"]: r["evals"] for r in base_arm["runs"]} if paired and base_arm else None
    rows = [arm_row(arm, axis, baseline_curves, base_by_seed) for arm in arms]
    runs = [{"variant": run["variant"], "group": arm["name"], "label": arm["label"], "value": arm["value"],
             "baseline": arm["baseline"], "seed": run["seed"], "step": run["evals"][-1]["step"],
             **{key: run["evals"][-1]["values"].get(key) for key in METRIC_KEYS}, "evals": run["evals"]}
            for arm in arms for run in arm["runs"]]
    base = rows[0] if base_arm else None
    return {
        "axis": axis, "primary": PRIMARY, "primary_name": names.get(PRIMARY, PRIMARY), "names": names,
        "steps": sorted({e["step"] for arm in arms for run in arm["runs"] for e in run["evals"]}),
        "baseline_final_step": max((r[-1]["step"] for r in baseline_runs), default=None),
        "paired": paired,
        "baseline": {key: base[key] for key in HEADLINE} if base else None,
        "rows": rows, "runs": runs, "extractor": extractor,
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


def mean_sd(summary: Optional[dict[str, Any]]) -> str:
    if not summary:
        return "-"
    return _fmt(summary["mean"]) + (f" ± {_fmt(summary['sd'])}" if summary["sd"] is not None else "")


def _kind(target: dict[str, Any]) -> str:
    return "final" if target["kind"] == "final" else f"best @{target['best_step']} ({target['kind']})"


def _reach(row: dict[str, Any], key: str) -> tuple[str, str, str]:
    reach, speed = row[f"{key}_reach"], row[f"{key}_speedup"]
    if not reach:
        return "-", "-", "-"
    steps = _fmt(reach["steps"]) if reach["steps"] is not None else "never"
    up = (_fmt(speed["value"]) + "x") if speed["value"] else "-"
    low, high = speed["ci95"]
    return (_kind(reach["target"]), f"{steps} {_interval(*reach['ci95'])}",
            f"{up} [{_fmt(low) if low else '0'}, {_fmt(high) if high else '-'}]")


def format_gain(summary: Optional[dict[str, Any]]) -> str:
    """A paired gain's mean and 95% t interval, signed: "+0.013 [+0.003, +0.023]"."""
    if not summary:
        return "-"
    low, high = summary["ci95"]
    return f"{summary['mean']:+.3g}" + (f" [{low:+.3g}, {high:+.3g}]" if low is not None else " (1 pair)")


def format_paired_speedup(speedup: dict[str, Any]) -> str:
    """A PairedSpeedup's mean and 95% t interval, "1.15x [0.96, 1.34]", or how many pairs never reached."""
    summary, n = speedup["summary"], len(speedup["pairs"])
    if summary is None:
        return f"never in {speedup['never']} of {n} pairs" if speedup["never"] else "-"
    low, high = summary["ci95"]
    return f"{summary['mean']:.3g}x" + (f" [{low:.3g}, {high:.3g}]" if low is not None else " (1 pair)")


def _paired(row: dict[str, Any], key: str) -> tuple[str, str, str, str]:
    block = row[f"{key}_paired"]
    if not block:
        return "-", "-", "-", "-"
    pairs = block["speedup"]["pairs"]
    kinds = [_kind(p["target"]) for p in pairs]
    targets = kinds[0] if len(set(kinds)) == 1 else ", ".join(kinds)
    steps = " / ".join(_fmt(p["steps"]) if p["steps"] is not None else "never" for p in pairs)
    return format_gain(block["final_gain"]), targets, steps, format_paired_speedup(block["speedup"])


def table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per variant (seeds pooled): mean ± sd, 95% t interval, curve means, then the comparison with the
    baseline: paired by seed when the arms share seeds, else on the seed means."""
    axis, names = report["axis"], report["names"]
    steps = report["steps"]
    header = ["variant", axis, "seeds", "step"]
    for key in HEADLINE:
        header += [f"{names[key]} mean ± sd", f"{names[key]} 95% CI"]
    header += [names[k] for k in METRIC_KEYS if k not in HEADLINE]
    header += [f"{report['primary_name']} @{s}" for s in steps]
    for key in HEADLINE:
        if report["paired"]:
            header += [f"paired gain {names[key]} [95% CI]", f"target {names[key]}",
                       f"steps to target {names[key]} (per pair)", f"speed-up {names[key]} per pair [95% CI]"]
        else:
            header += [f"target {names[key]}", f"steps to baseline {names[key]} [95% CI]",
                       f"speed-up {names[key]} [95% CI]"]
    body = []
    for row in report["rows"]:
        line = [row["variant"], _fmt(row[axis]), str(len(row["seeds"])), _fmt(row["step"])]
        for key in HEADLINE:
            summary = row[key]
            line += [mean_sd(summary), _interval(*summary["ci95"], upper_open=False) if summary else "-"]
        line += [_fmt(row[k]["mean"]) if row[k] else "-" for k in METRIC_KEYS if k not in HEADLINE]
        by_step = row[f"{PRIMARY}_by_step"]
        line += [_fmt(by_step[s]["mean"]) if by_step.get(s) else "-" for s in steps]
        for key in HEADLINE:
            line += list(_paired(row, key) if report["paired"] else _reach(row, key))
        body.append(line)
    return header, body


def run_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["run", "seed", "step"] + [report["names"][k] for k in METRIC_KEYS]
    body = [[r["variant"], str(r["seed"]), str(r["step"])] + [_fmt(r.get(k)) for k in METRIC_KEYS]
            for r in report["runs"]]
    return header, body


def interval_verdict(low: Optional[float], high: Optional[float]) -> str:
    """A gain's 95% interval in words (positive gains are better)."""
    if low is None or high is None:
        return "no interval (one seed)"
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "no difference shown"


def paired_verdict(row: dict[str, Any], key: str, name: str) -> Optional[str]:
    """The variant's paired final gain in words: does its 95% t interval exclude 0, and on which side?"""
    block = row[f"{key}_paired"]
    if not block or not block["final_gain"]:
        return None
    gain = block["final_gain"]
    verdict = interval_verdict(*gain["ci95"])
    reading = {"better": "the interval excludes 0: better", "worse": "the interval excludes 0: worse",
               "no difference shown": "the interval includes 0: no difference shown"}.get(verdict, verdict)
    return (f"- {row['variant']}, {name}: paired gain at step {block['final_step']} (baseline - variant, same seed, "
            f"n={gain['n']}) {format_gain(gain)}: {reading}; speed-up per pair {format_paired_speedup(block['speedup'])}")


def unpaired_verdict(row: dict[str, Any], key: str, name: str, base: dict[str, Any]) -> Optional[str]:
    """The final difference in baseline sd, and the speed-up of the seed-mean curves."""
    b, v = base.get(key), row[key]
    if not b or not v or b["sd"] in (None, 0):
        return None
    sign = 1.0 if LOWER_IS_BETTER[key] else -1.0
    gain = sign * (b["mean"] - v["mean"]) / b["sd"]
    speed = row[f"{key}_speedup"]["value"]
    return (f"- {row['variant']}, {name}: final {_fmt(v['mean'])} vs baseline {_fmt(b['mean'])} ± {_fmt(b['sd'])} "
            f"(sd, n={b['n']}): {gain:+.2f} baseline sd ({'better' if gain > 0 else 'worse'}); speed-up "
            f"{_fmt(speed) + 'x' if speed else 'none'}")


def verdicts(report: dict[str, Any]) -> list[str]:
    """Per variant and headline metric, in words: the paired interval when the arms share seeds, else the
    difference of the seed means in baseline sd."""
    base = report.get("baseline") or {}
    lines = []
    for row in report["rows"][1:]:
        for key in HEADLINE:
            name = report["names"][key]
            line = paired_verdict(row, key, name) if report["paired"] else unpaired_verdict(row, key, name, base)
            if line:
                lines.append(line)
    return lines


PAIRED_NOTE = (
    "Paired design: every variant shares the baseline's seeds, and a seed fixes both arms' initialisation, data "
    "order and dropout, so each variant is compared with the baseline run of its own seed. Paired gain: baseline "
    "- variant per seed (variant - baseline for higher-is-better metrics; positive is better) at the last "
    "evaluation, mean and 95% t interval over the pairs (n - 1 degrees of freedom). Speed-up per pair: the "
    "steps at which the baseline run first reaches its target (linear between evaluation points) over the steps "
    "at which the variant run first reaches the same value, so the baseline's speed-up over itself is 1 by "
    "construction; mean and 95% t interval over pairs (none when a pair never reaches its target). Target: the "
    "baseline run's final value when its curve is monotone ('final'), else its best value ('best @step': "
    "'overfits' when the curve only gets worse after it, 'wanders' when it goes up and down).")
UNPAIRED_NOTE = (
    "The arms do not share seeds: unpaired statistics. Intervals: 95% t interval of the seed mean; steps to "
    "baseline: the variant's seed-mean curve reaches the target of the baseline's seed-mean curve (its final "
    "value when monotone, else its best: 'best @step (overfits|wanders)'), linear between evaluation points; "
    "speed-up: the baseline's own first crossing of the target over the variant's. Their intervals: 95% "
    "percentile bootstrap over seeds resampled in each arm ('never': not reached within the run in over 2.5% of "
    "resamples); with 3 seeds per arm a percentile bootstrap has no small-sample correction and is too narrow, "
    "so read it as a rough range.")


def _markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in body]


def to_markdown(report: dict[str, Any]) -> str:
    lines = _markdown_table(*table_rows(report))
    lines += ["", "Runs:", ""] + _markdown_table(*run_rows(report))
    lines += ["", f"Axis `{report['axis']}`; sample metrics from {report['extractor']} features; lower "
              f"{report['primary_name']} and validation NLL (nats per token on held-out images) are better. "
              "Mean ± sd and 95% CI: over the seeds of each arm (t interval of the seed mean). "
              + (PAIRED_NOTE if report["paired"] else UNPAIRED_NOTE)]
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


def write_report(root: Path, variants: Sequence[Variant], results: dict[str, list[dict[str, Any]]], axis: str,
                 out: Optional[Path] = None) -> dict[str, Any]:
    """Write report.md/.csv/.json, convergence.png and one sample grid per variant into `out` (default: the study
    folder `root`); return the report data."""
    report = build_rows(variants, results, axis)
    out = out or root
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "report.md", to_markdown(report))
    write_text(out / "report.csv", to_csv(report))
    write_json(out / "report.json", report)
    plot_convergence(report, out / "convergence.png")
    for row in report["runs"]:
        grid = root / "runs" / row["variant"] / "samples" / f"step_{row['step']:08d}" / "grid.png"
        if grid.is_file():
            shutil.copyfile(grid, out / f"grid_{row['variant']}.png")
    return report
