"""The study's comparisons re-read paired by seed, from committed rows (docs/study_rows.jsonl: the sweep's
selection seeds; docs/study_fresh_rows.jsonl: the fresh-seed reports' numbers transcribed from docs/study.md and
docs/reports). Same seed = same initialisation, data order and dropout in both arms, so each variant row is
compared with the baseline row of its own seed and tokenizer fit (mirai_cli.ablate.stats, as `mirai ablate`).

    python bench/study_paired.py pair base-3k enc-s8-l05-3k          # paired final gain, per-pair speed-up
    python bench/study_paired.py pairs --rows docs/study_fresh_rows.jsonl [--metric fid]   # every comparison
    python bench/study_paired.py student-size --plot docs/study_student_size.png      # gain vs student size
    python bench/study_paired.py gains 0.026 0.017 0.021            # t interval of given per-seed gains

Without --rows the sweep's records and this checkout's run folders are read (bench/study_sweep.py). A row's
baseline is its "baseline" field, else study_sweep.BASELINE_OF, else `base`. Rows with only a final value (no
curve) give the paired gain but no speed-up: "needs a rerun (curves not committed)".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import study_sweep as sweep

from mirai_cli.ablate.report import format_gain, format_paired_speedup
from mirai_cli.ablate.stats import paired_gains, paired_speedups, summarize, welch_difference

Rows = dict[tuple[str, int], dict]  # one tokenizer fit's rows by (config, seed)
CURVE_KEY = {"val_nll": "curve", "fid": "fd_curve"}
# The student-size question (docs/study.md, session 6): (baseline, Mirai-I stride 8) per width, 4 layers, 3000 steps
STUDENT_SIZES = [("base-3k", "enc-s8-l05-3k"), ("base-w256-3k", "enc-s8-l05-w256-3k"),
                 ("base-w384-3k", "enc-s8-l05-w384-3k")]
NEEDS_RERUN = "needs a rerun (curves not committed)"


def rows_by_fit(rows_path: Optional[Path]) -> dict[str, Rows]:
    """Finished rows grouped by tokenizer fit (rows of different fits are never compared)."""
    if rows_path is None:
        return {fit: {k: r for k, r in rows.items() if r} for fit, rows in sweep.generations().items()
                if fit != "unfinished"}
    if not rows_path.is_file():
        raise SystemExit(f"no rows file {rows_path}")
    groups: dict[str, Rows] = {}
    for (fit, name, seed), row in sweep.recorded_rows(rows_path).items():
        groups.setdefault(fit, {})[(name, seed)] = row
    return groups


def baseline_of(rows: Rows, name: str) -> str:
    given = {r.get("baseline") for (n, _), r in rows.items() if n == name} - {None}
    return given.pop() if given else sweep.BASELINE_OF.get(name, "base")


def curves(rows: Rows, name: str, metric: str) -> dict[int, dict[int, float]]:
    key = CURVE_KEY[metric]
    return {seed: {int(s): v for s, v in r[key].items()} for (n, seed), r in rows.items() if n == name and key in r}


def compare(rows: Rows, base_name: str, name: str, metric: str = "val_nll") -> Optional[dict]:
    """Paired final gain (baseline - variant at the last step both have) and per-pair speed-up over the shared
    seeds; None without a shared seed."""
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


def speedup_text(result: dict) -> str:
    return format_paired_speedup(result["speedup"].to_dict()) if result["speedup"] else NEEDS_RERUN


def targets_text(result: dict) -> str:
    if not result["speedup"]:
        return "-"
    kinds = [p.target.kind if p.target.kind == "final" else f"best @{p.target.best_step} ({p.target.kind})"
             for p in result["speedup"].pairs]
    return kinds[0] if len(set(kinds)) == 1 else ", ".join(kinds)


HEADER = ("| baseline | variant | fit | seeds | step | per-seed gain | paired gain [95% CI] | speed-up per pair [95% CI] "
          "| target |\n|---|---|---|---|---|---|---|---|---|")


def line(result: dict, fit: str) -> str:
    return (f"| {result['baseline']} | {result['variant']} | {fit} | {', '.join(map(str, result['seeds']))} "
            f"| {result['step']} | {' / '.join(f'{g:+.4g}' for g in result['per_seed'])} "
            f"| {format_gain(result['gain'].to_dict())} | {speedup_text(result)} | {targets_text(result)} |")


def pair(groups: dict[str, Rows], base_name: str, name: str, metric: str) -> str:
    found = [(fit, r) for fit, rows in groups.items() if (r := compare(rows, base_name, name, metric))]
    if not found:
        raise SystemExit(f"no seed on which both {base_name} and {name} finished on one tokenizer fit")
    return "\n".join([HEADER] + [line(r, fit) for fit, r in found]) + "\n"


def pairs(groups: dict[str, Rows], metric: str) -> str:
    """Every variant row against its baseline, per tokenizer fit, where they share a seed."""
    lines = [HEADER]
    for fit, rows in groups.items():
        for name in sorted({n for n, _ in rows}):
            base_name = baseline_of(rows, name)
            if name != base_name and (r := compare(rows, base_name, name, metric)):
                lines.append(line(r, fit))
    return "\n".join(lines) + "\n"


def latest(groups: dict[str, Rows], base_name: str, name: str) -> Optional[tuple[str, dict]]:
    """The latest tokenizer fit on which both rows share seeds, and their comparison there."""
    for fit, rows in reversed(list(groups.items())):
        result = compare(rows, base_name, name)
        if result:
            return fit, result
    return None


def student_parameters(name: str) -> dict[str, int]:
    """The student's width and parameter counts, from the row's model config (the library builds it)."""
    from mirai_cli.config import load_config
    from mirai_cli.engine.run import gpt_config_from
    from mirai_cli.gpt.model import parameter_counts

    config = load_config(sweep.PRESETS, sweep.CONFIGS[name] + sweep.COMMON)
    return {"width": config.model.dim, "layers": config.model.layers,
            **parameter_counts(gpt_config_from(config))}


def student_size(groups: dict[str, Rows], plot: Optional[Path]) -> str:
    """Paired gain and per-pair speed-up at each student width that has finished rows, against the student's
    non-embedding parameters; the Welch interval of (largest width - width 128) for both, as the rule in
    docs/study.md reads them."""
    points = []
    for base_name, name in STUDENT_SIZES:
        found = latest(groups, base_name, name)
        if found:
            points.append((student_parameters(name), found[0], found[1]))
    if not points:
        raise SystemExit("no student-size rows finished yet: python bench/study_sweep.py run base-3k enc-s8-l05-3k "
                         "--seeds 100 101 102")
    lines = ["| width | layers | non-embedding parameters | fit | seeds | paired gain at 3000 [95% CI] "
             "| speed-up per pair [95% CI] |", "|---|---|---|---|---|---|---|"]
    for params, fit, r in points:
        lines.append(f"| {params['width']} | {params['layers']} | {params['non_embedding'] / 1e6:.2f}M | {fit} "
                     f"| {', '.join(map(str, r['seeds']))} | {format_gain(r['gain'].to_dict())} | {speedup_text(r)} |")
    if len(points) > 1:
        (p0, _, first), (p1, _, last) = points[0], points[-1]
        for what, values in (("paired gain", lambda r: r["per_seed"]),
                             ("speed-up", lambda r: [p.speedup for p in r["speedup"].pairs] if r["speedup"] else [])):
            diff = welch_difference(values(last), values(first))
            lines.append(f"\n{what}, width {p1['width']} - width {p0['width']}: " + (
                f"{diff[0]:+.4f} [{diff[1]:+.4f}, {diff[2]:+.4f}] (Welch 95%)" if diff else "not enough pairs"))
    if plot is not None:
        plot_student_size(points, plot)
        lines.append(f"\nplot: {plot}")
    return "\n".join(lines) + "\n"


def plot_student_size(points: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mirai_cli.files.atomic import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    xs = [p["non_embedding"] / 1e6 for p, _, _ in points]
    panels = [("paired gain in val NLL at step 3000 (nats)", [r["gain"] for _, _, r in points], 0.0),
              ("speed-up per pair", [r["speedup"].summary if r["speedup"] else None
                                                                     for _, _, r in points], 1.0)]
    for ax, (label, summaries, reference) in zip(axes, panels):
        for x, s, (p, _, _) in zip(xs, summaries, points):
            if s is None:
                continue
            err = [[s.mean - s.low], [s.high - s.mean]] if s.low is not None else None
            ax.errorbar([x], [s.mean], yerr=err, fmt="o", capsize=4, label=f"width {p['width']} (n={s.n})")
        ax.axhline(reference, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlim(min(xs) / 1.5, max(max(xs) * 1.5, 10.0))  # room for the widths still running
        ax.set_xlabel("student non-embedding parameters (M), 4 layers")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Mirai-I (Lite1 stride 8) vs baseline, same seeds, 6000 images, 3000 steps (95% t intervals)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for cmd in ("pair", "pairs", "student-size"):
        p = sub.add_parser(cmd)
        if cmd == "pair":
            p.add_argument("baseline")
            p.add_argument("variant")
        p.add_argument("--rows", type=Path, help="a rows file (default: the sweep's records and run folders)")
        if cmd != "student-size":
            p.add_argument("--metric", choices=sorted(CURVE_KEY), default="val_nll")
        else:
            p.add_argument("--plot", type=Path)
    g = sub.add_parser("gains", help="mean and 95%% t interval of given per-seed paired gains")
    g.add_argument("values", type=float, nargs="+")
    args = parser.parse_args()
    if args.cmd == "gains":
        s = summarize(args.values)
        print(format_gain(s.to_dict() if s else None))
        return
    groups = rows_by_fit(args.rows)
    if args.cmd == "pair":
        out = pair(groups, args.baseline, args.variant, args.metric)
    elif args.cmd == "pairs":
        out = pairs(groups, args.metric)
    else:
        out = student_size(groups, args.plot)
    sys.stdout.write(out)


if __name__ == "__main__":
    main()
