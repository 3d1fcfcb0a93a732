"""The few lines `mirai ablate` prints when a study ends: per variant its final metrics, its gain over the
baseline with an interval, the speed-up and a verdict, then where the full report is. The wide table (every
metric, every evaluation step, per run) stays in report.md/.csv/.json: no terminal shows its columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mirai_cli.ablate.report import (
    HEADLINE,
    LOWER_IS_BETTER,
    format_gain,
    format_paired_speedup,
    interval_verdict,
    mean_sd,
)
from mirai_cli.ablate.stats import gain, summarize, welch_difference

# Likelihood first: it is the low-noise signal; FD next.
ORDER = sorted(HEADLINE, key=lambda key: key != "val_nll")


def _finals(report: dict[str, Any], group: str, key: str) -> list[float]:
    return [run[key] for run in report["runs"] if run["group"] == group and run.get(key) is not None]


def _unpaired_gain(report: dict[str, Any], row: dict[str, Any], key: str) -> tuple[str, str]:
    """Seed means' difference with its Welch interval (the arms do not share seeds)."""
    base = _finals(report, report["rows"][0]["variant"], key)
    var = _finals(report, row["variant"], key)
    if not base or not var:
        return "-", "-"
    sign = 1.0 if LOWER_IS_BETTER[key] else -1.0
    welch = welch_difference([sign * v for v in base], [sign * v for v in var])
    if welch is None:
        mean = gain(summarize(base).mean, summarize(var).mean, LOWER_IS_BETTER[key])
        return f"{mean:+.3g}", interval_verdict(None, None)
    diff, low, high = welch
    return f"{diff:+.3g} [{low:+.3g}, {high:+.3g}]", interval_verdict(low, high)


def _unpaired_speedup(row: dict[str, Any], key: str) -> str:
    speed = row[f"{key}_speedup"]
    if not speed["value"]:
        return "never"
    low, high = speed["ci95"]
    return f"{speed['value']:.3g}x [{f'{low:.3g}' if low else '0'}, {f'{high:.3g}' if high else 'never'}]"


def comparison(report: dict[str, Any], row: dict[str, Any], key: str) -> list[str]:
    """[gain with interval, speed-up with interval, verdict] of one variant on one metric."""
    if report["paired"]:
        block = row[f"{key}_paired"]
        if not block or not block["final_gain"]:
            return ["-", "-", "-"]
        final = block["final_gain"]
        return [format_gain(final), format_paired_speedup(block["speedup"]), interval_verdict(*final["ci95"])]
    gain_text, verdict = _unpaired_gain(report, row, key)
    return [gain_text, _unpaired_speedup(row, key), verdict]


def _columns(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]


def study_summary(report: dict[str, Any], report_path: Path) -> str:
    """What the terminal shows at the end of a study: final values per arm, each variant against the baseline
    (paired by seed when the arms share seeds), and the path of the full report."""
    keys = [k for k in ORDER if any(row[k] for row in report["rows"])]
    names = report["names"]
    rows = report["rows"]
    seeds = ", ".join(str(s) for s in rows[0]["seeds"]) if rows else "-"
    lines = [f"study `{report['axis']}`: {len(rows)} arms, seeds {seeds}, final step {report['baseline_final_step']}",
             "final values (mean ± sd over seeds; lower is better):"]
    lines += _columns([["arm", *(names[k] for k in keys)]] + [[r["variant"], *(mean_sd(r[k]) for k in keys)]
                                                              for r in rows])
    has_baseline = bool(rows) and report.get("baseline") is not None
    if has_baseline and len(rows) > 1:
        how = ("paired by seed; 95% t intervals over the seed pairs" if report["paired"] else
               "unpaired: gain of the seed means with a Welch 95% interval, speed-up with a bootstrap range")
        lines.append(f"against the baseline ({how}):")
        table = [["variant", "metric", "gain", "speed-up", "verdict"]]
        table += [[row["variant"], names[key], *comparison(report, row, key)] for row in rows[1:] for key in keys]
        lines += _columns(table)
    lines.append(f"full report: {report_path} (also report.csv, report.json, convergence.png)")
    return "\n".join(lines) + "\n"
