"""The sweep table (docs/study_sweep.md): every recorded row of the study files, by tokenizer fit, against its
baseline (on the mean of the baseline's seeds and on the same seed), then every comparison paired by seed.

Rows of different tokenizer fits are never compared: a refit on another machine gives other codes. A row's
baseline is its "baseline" field, else its study file's, else none (it is then only listed).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Iterable, Optional

from mirai_cli.ablate.report import format_gain, format_paired_speedup
from mirai_cli.ablate.rows import RowKey, reproduce_command
from mirai_cli.ablate.stats import mean_curve, pair_reach, paired_gains, paired_speedups, summarize
from mirai_cli.ablate.study_file import StudyFile, read_study_file

Rows = dict[tuple[str, int], dict[str, Any]]  # one tokenizer fit's rows by (variant, seed)
CURVE_KEY = {"val_nll": "curve", "fid": "fd_curve"}
NEEDS_RERUN = "needs a rerun (curves not committed)"


class Catalog:
    """The study files' variants by name: where each lives, its settings and its baseline."""

    def __init__(self, studies: Iterable[StudyFile]):
        self.owner = {name: study for study in studies for name in study.variants}

    @classmethod
    def of_folder(cls, folder: Path) -> "Catalog":
        return cls(read_study_file(path) for path in sorted(Path(folder).glob("*.toml")))

    def overrides(self, name: str) -> str:
        return " ".join(self.owner[name].overrides(name)) if name in self.owner else "-"

    def command(self, name: str, seed: int) -> str:
        return f"`{reproduce_command(self.owner[name].path, name, seed)}`" if name in self.owner else "-"

    def baseline_of(self, rows: Rows, name: str) -> str:
        given = {r.get("baseline") for (n, _), r in rows.items() if n == name} - {None}
        if given:
            return given.pop()
        return self.owner[name].variants[name].baseline if name in self.owner else name


def rows_by_fit(rows: dict[RowKey, dict[str, Any]]) -> dict[str, Rows]:
    """Rows grouped by tokenizer fit, in the order the fits first appear."""
    groups: dict[str, Rows] = {}
    for (fit, name, seed), row in rows.items():
        groups.setdefault(fit, {})[(name, seed)] = row
    return groups


def baseline_rows(rows: Rows, name: str) -> dict[str, Any]:
    """A baseline variant's rows: per seed, the seed-mean curve, its final value and the sd of the finals."""
    by_seed = {seed: r for (n, seed), r in rows.items() if n == name}
    curves = [r["curve"] for r in by_seed.values()]
    mean = mean_curve(curves) if curves else {}
    finals = [c[max(c)] for c in curves]
    return {"rows": by_seed, "mean": mean, "final": mean[max(mean)] if mean else None, "finals": finals,
            "sd": statistics.stdev(finals) if len(finals) > 1 else None}


HEADER = ("| config | overrides | seed | steps | wall s | val NLL @ steps | final val NLL | gain vs base mean (base sd) "
          "| gain vs base, same seed | best val NLL (step) | best gain vs base, same seed | steps to base target "
          "| speed-up | reproduce |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def fit_table(rows: Rows, catalog: Catalog) -> str:
    """One fit's rows, each against its baseline's seed mean and its same-seed baseline row; then each
    baseline's final values over seeds."""
    bases = {b: baseline_rows(rows, b) for b in {catalog.baseline_of(rows, n) for n, _ in rows}}
    lines = [HEADER]
    for name, seed in sorted(rows):
        lines.append(row_line(name, seed, rows[(name, seed)], bases[catalog.baseline_of(rows, name)], catalog))
    for name, base in sorted(bases.items()):
        if base["finals"]:
            s = summarize(base["finals"])
            assert s is not None
            lines.append(f"\nBaseline `{name}` final val NLL over seeds {sorted(base['rows'])}: mean {s.mean:.4f}, sd "
                         f"{s.sd if s.sd is None else round(s.sd, 4)}, 95% CI {s.low and round(s.low, 4)}.."
                         f"{s.high and round(s.high, 4)}")
    return "\n".join(lines) + "\n"


def row_line(name: str, seed: int, row: dict[str, Any], base: dict[str, Any], catalog: Catalog) -> str:
    curve = row["curve"]
    final = curve[max(curve)]
    same = base["rows"].get(seed)
    # the same-seed baseline's target (its final value, or its best if it overfits or wanders) and its own first
    # crossing of it; without a same-seed baseline, the seed-mean curve's
    reach = pair_reach(same["curve"] if same else base["mean"], curve) if base["mean"] else None
    delta = f"{(base['final'] - final):+.4f} ({(base['final'] - final) / base['sd']:+.1f} sd)" if base["sd"] else "-"
    points = " ".join(f"{curve[s]:.3f}" for s in sorted(curve))
    paired = f"{same['curve'][max(same['curve'])] - final:+.4f}" if same else "-"
    best_step = min(curve, key=curve.get)
    best_paired = f"{min(same['curve'].values()) - curve[best_step]:+.4f}" if same else "-"
    steps = f"{reach.steps:.0f}" if reach and reach.steps else "never"
    speedup = (f"{reach.speedup:.2f}x" if reach and reach.speedup else "-") + ("" if same else " (vs mean)")
    return (f"| {name} | {catalog.overrides(name)} | {seed} | {row['steps']} | {row['seconds']:.0f} | {points} "
            f"| {final:.4f} | {delta} | {paired} | {curve[best_step]:.4f} ({best_step}) | {best_paired} | {steps} "
            f"| {speedup} | {catalog.command(name, seed)} |")


# ---- paired by seed ------------------------------------------------------------------------------------------

def curves(rows: Rows, name: str, metric: str) -> dict[int, dict[int, float]]:
    key = CURVE_KEY[metric]
    return {seed: dict(r[key]) for (n, seed), r in rows.items() if n == name and key in r}


def compare(rows: Rows, base_name: str, name: str, metric: str = "val_nll") -> Optional[dict[str, Any]]:
    """Paired final gain (baseline - variant at the last step both have) and per-pair speed-up over the shared
    seeds; None without a shared seed. Rows with a final value only (no curve) get no speed-up."""
    base, var = curves(rows, base_name, metric), curves(rows, name, metric)
    seeds = sorted(set(base) & set(var))
    if not seeds:
        return None
    b, v = [base[s] for s in seeds], [var[s] for s in seeds]
    gains = paired_gains(b, v)
    if not gains:
        return None
    final = max(gains)
    committed = all(len(c) > 1 for c in b + v)
    return {"baseline": base_name, "variant": name, "seeds": seeds, "step": final, "gain": gains[final],
            "per_seed": [x[final] - y[final] for x, y in zip(b, v)],
            "speedup": paired_speedups(b, v) if committed else None}


def speedup_text(result: dict[str, Any]) -> str:
    return format_paired_speedup(result["speedup"].to_dict()) if result["speedup"] else NEEDS_RERUN


def targets_text(result: dict[str, Any]) -> str:
    if not result["speedup"]:
        return "-"
    kinds = [p.target.kind if p.target.kind == "final" else f"best @{p.target.best_step} ({p.target.kind})"
             for p in result["speedup"].pairs]
    return kinds[0] if len(set(kinds)) == 1 else ", ".join(kinds)


PAIRS_HEADER = ("| baseline | variant | fit | seeds | step | per-seed gain | paired gain [95% CI] "
                "| speed-up per pair [95% CI] | target |\n|---|---|---|---|---|---|---|---|---|")


def pair_line(result: dict[str, Any], fit: str) -> str:
    return (f"| {result['baseline']} | {result['variant']} | {fit} | {', '.join(map(str, result['seeds']))} "
            f"| {result['step']} | {' / '.join(f'{g:+.4g}' for g in result['per_seed'])} "
            f"| {format_gain(result['gain'].to_dict())} | {speedup_text(result)} | {targets_text(result)} |")


def pairs_table(groups: dict[str, Rows], catalog: Catalog, metric: str = "val_nll") -> str:
    """Every variant row against its baseline, per tokenizer fit, where they share a seed."""
    lines = [PAIRS_HEADER]
    for fit, rows in groups.items():
        for name in sorted({n for n, _ in rows}):
            base_name = catalog.baseline_of(rows, name)
            if name != base_name and (r := compare(rows, base_name, name, metric)):
                lines.append(pair_line(r, fit))
    return "\n".join(lines) + "\n"


PAIRS_NOTE = ("Per-seed gain = baseline - row at the last step both have; paired gain: mean and 95% t interval over the "
              "seed pairs; speed-up per pair: the baseline's own first crossing of its target (final value, or best "
              "if its curve overfits or wanders) over the row's; `python bench/study_paired.py pairs`.")


def sweep_table(rows: dict[RowKey, dict[str, Any]], catalog: Catalog, started: Iterable[tuple[str, int]] = ()) -> str:
    """The whole table: a section per tokenizer fit, the paired comparisons, and the runs started but not
    recorded (from the study folders here)."""
    groups = rows_by_fit(rows)
    sections = []
    for fit, fit_rows in groups.items():
        transcribed = all(r.get("source") == "table" for r in fit_rows.values())
        title = f"Tokenizer fit `{fit}`" + (" (rows transcribed from an earlier table: curves to 3 decimals, final "
                                            "values to 4)" if transcribed else "")
        sections.append(f"## {title}\n\n" + fit_table(fit_rows, catalog))
    sections.append("## Paired by seed (every row against its baseline on the same seeds and fit)\n\n"
                    f"{PAIRS_NOTE}\n\n" + pairs_table(groups, catalog))
    started = sorted(set(started))
    if started:
        sections.append("## Started here, not finished\n\n| config | overrides | seed | reproduce |\n|---|---|---|---|\n"
                        + "".join(f"| {n} | {catalog.overrides(n)} | {s} | {catalog.command(n, s)} |\n"
                                  for n, s in started))
    return "\n".join(sections)


def started_runs(catalog: Catalog, rows: dict[RowKey, dict[str, Any]]) -> list[tuple[str, int]]:
    """(variant, seed) of the run folders in the study folders here that have no recorded row."""
    recorded = {(name, seed) for _, name, seed in rows}
    found = []
    for name, study in catalog.owner.items():
        root = Path(study.config(name).ablate.out_dir.format(axis=study.name)) / "runs"
        for folder in root.glob(f"{name}-s*") if root.is_dir() else []:
            seed = folder.name[len(name) + 2:]
            if folder.is_dir() and seed.isdigit() and (name, int(seed)) not in recorded:
                found.append((name, int(seed)))
    return found
