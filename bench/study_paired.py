"""The study's comparisons re-read paired by seed, from committed rows (docs/study_rows.jsonl: every finished run
of the study files docs/studies/*.toml, recorded by `mirai ablate --study`; docs/study_fresh_rows.jsonl: the
fresh-seed reports' numbers transcribed from docs/study.md and docs/reports). Same seed = same initialisation,
data order and dropout in both arms, so each variant row is compared with the baseline row of its own seed and
tokenizer fit (mirai_cli.ablate.sweep_table and .stats, as `mirai ablate`).

    python bench/study_paired.py table > docs/study_sweep.md          # the sweep table, every row
    python bench/study_paired.py pair base-3k enc-s8-l05-3k          # paired final gain, per-pair speed-up
    python bench/study_paired.py pairs --rows docs/study_fresh_rows.jsonl [--metric fid]   # every comparison
    python bench/study_paired.py student-size --plot docs/study_student_size.png      # gain vs student size
    python bench/study_paired.py horizon base-3k enc-s16-l05-3k      # speed-up against run length
    python bench/study_paired.py extrapolate base-d20k enc-s16-l05-d20k   # ... at longer horizons (a power law)
    python bench/study_paired.py gains 0.026 0.017 0.021            # t interval of given per-seed gains

A row's baseline is its "baseline" field, else its study file's (docs/studies). Rows with only a final value (no
curve) give the paired gain but no speed-up: "needs a rerun (curves not committed)".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from mirai_cli.ablate.report import format_gain, format_paired_speedup
from mirai_cli.ablate.rows import read_rows
from mirai_cli.ablate.stats import mean_curve, paired_gains, paired_speedups, summarize, welch_difference
from mirai_cli.ablate.sweep_table import (
    PAIRS_HEADER,
    Catalog,
    Rows,
    compare,
    pair_line,
    pairs_table,
    rows_by_fit,
    speedup_text,
    started_runs,
    sweep_table,
)

ROWS = Path("docs/study_rows.jsonl")
STUDIES = Path("docs/studies")
# The student-size question (docs/study.md, session 6): (baseline, Mirai-I stride 8) per width, 4 layers, 3000 steps
STUDENT_SIZES = [("base-3k", "enc-s8-l05-3k"), ("base-w256-3k", "enc-s8-l05-w256-3k"),
                 ("base-w384-3k", "enc-s8-l05-w384-3k")]


def read_groups(rows_path: Path) -> dict[str, Rows]:
    """Rows grouped by tokenizer fit (rows of different fits are never compared)."""
    if not rows_path.is_file():
        raise SystemExit(f"no rows file {rows_path}")
    return rows_by_fit(read_rows(rows_path))


def pair(groups: dict[str, Rows], base_name: str, name: str, metric: str) -> str:
    found = [(fit, r) for fit, rows in groups.items() if (r := compare(rows, base_name, name, metric))]
    if not found:
        raise SystemExit(f"no seed on which both {base_name} and {name} finished on one tokenizer fit")
    return "\n".join([PAIRS_HEADER] + [pair_line(r, fit) for fit, r in found]) + "\n"


def latest(groups: dict[str, Rows], base_name: str, name: str) -> Optional[tuple[str, dict]]:
    """The latest tokenizer fit on which both rows share seeds, and their comparison there."""
    for fit, rows in reversed(list(groups.items())):
        result = compare(rows, base_name, name)
        if result:
            return fit, result
    return None


def student_parameters(catalog: Catalog, name: str) -> dict[str, int]:
    """The student's width and parameter counts, from the row's model config (the library builds it)."""
    from mirai_cli.engine.run import gpt_config_from
    from mirai_cli.gpt.model import parameter_counts

    config = catalog.owner[name].config(name)
    return {"width": config.model.dim, "layers": config.model.layers,
            **parameter_counts(gpt_config_from(config))}


def student_size(groups: dict[str, Rows], catalog: Catalog, plot: Optional[Path]) -> str:
    """Paired gain and per-pair speed-up at each student width that has finished rows, against the student's
    non-embedding parameters; the Welch interval of (largest width - width 128) for both, as the rule in
    docs/study.md reads them."""
    points = []
    for base_name, name in STUDENT_SIZES:
        found = latest(groups, base_name, name)
        if found:
            points.append((student_parameters(catalog, name), found[0], found[1]))
    if not points:
        raise SystemExit("no student-size rows finished yet: mirai ablate --study docs/studies/length.toml "
                         "--variants enc-s8-l05-3k --seeds 100,101,102")
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


def paired_curves(groups: dict[str, Rows], base_name: str, name: str) -> tuple[list[int], list[dict], list[dict]]:
    """The seeds both rows finished on the latest tokenizer fit that has both, and each row's validation-NLL
    curves on them (in seed order)."""
    for rows in reversed(list(groups.values())):
        base = {s: r["curve"] for (n, s), r in rows.items() if n == base_name}
        var = {s: r["curve"] for (n, s), r in rows.items() if n == name}
        seeds = sorted(set(base) & set(var))
        if seeds:
            return seeds, [base[s] for s in seeds], [var[s] for s in seeds]
    raise SystemExit(f"no seed on which both {base_name} and {name} finished on one tokenizer fit")


def horizon(groups: dict[str, Rows], base_name: str, name: str) -> str:
    """Speed-up as a function of the run's length: both rows' curves cut at each evaluation step H, then per seed
    pair the gain at H and the steps the variant needs to reach the pair's baseline target (its value at H, or
    its best before H if it wandered) over the baseline's own first crossing of it; t intervals over the pairs."""
    seeds, base, var = paired_curves(groups, base_name, name)
    lines = [f"{name} vs {base_name}, seed pairs {seeds}", "", "| horizon H | baseline mean at H | paired gain at H "
             "[95% CI] | speed-up per pair [95% CI] |", "|---|---|---|---|"]
    for h, b in sorted(mean_curve(base).items()):
        cut = [[{k: v for k, v in c.items() if k <= h} for c in arm] for arm in (base, var)]
        gain = paired_gains(*cut).get(h)
        lines.append(f"| {h} | {b:.4f} | {format_gain(gain.to_dict() if gain else None)} "
                     f"| {format_paired_speedup(paired_speedups(*cut).to_dict())} |")
    return "\n".join(lines) + "\n"


def extrapolate(groups: dict[str, Rows], base_name: str, name: str, start: int = 1500, gap_from: int = 2000) -> str:
    """Where the speed-up would reach 1.5x if the runs went on: fit L(H) = c + b H^-alpha to the baseline's
    seed-mean curve (steps >= start; alpha by grid, c and b by least squares), take the variant as the baseline
    curve lowered by its mean gap since `gap_from`, and solve for the steps at which the variant reaches the
    baseline's value at H. An extrapolation, stated as one: it assumes the gap stays constant and nothing
    overfits."""
    import numpy as np

    seeds, base_curves, curves = paired_curves(groups, base_name, name)
    base, var = mean_curve(base_curves), mean_curve(curves)
    h = np.array([k for k in base if k >= start], float)
    loss = np.array([base[int(k)] for k in h])
    fits = []
    for alpha in np.linspace(0.05, 3, 296):
        x = np.stack([np.ones_like(h), h ** -alpha], 1)
        coef = np.linalg.lstsq(x, loss, rcond=None)[0]
        fits.append((float(((x @ coef - loss) ** 2).mean()), alpha, *coef))
    mse, alpha, c, b = min(fits)
    gap = float(np.mean([base[k] - var[k] for k in base if k >= gap_from and k in var]))
    lines = [f"{name} vs {base_name}, seeds {seeds}: baseline L(H) = {c:.4f} + {b:.4g} H^-{alpha:.2f} (rms "
             f"{mse ** 0.5:.4f}), gap {gap:+.4f} nats (mean since step {gap_from})", "", "| horizon H | speed-up |",
             "|---|---|"]
    for horizon_steps in (max(base), 10000, 15000, 20000, 30000):
        reach = ((b * horizon_steps ** -alpha + gap) / b) ** (-1 / alpha)
        lines.append(f"| {horizon_steps} | {horizon_steps / reach:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=Path, default=STUDIES, help="the study files' folder (names, baselines)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for cmd in ("table", "pair", "pairs", "student-size", "horizon", "extrapolate"):
        p = sub.add_parser(cmd)
        if cmd in ("pair", "horizon", "extrapolate"):
            p.add_argument("baseline")
            p.add_argument("variant")
        p.add_argument("--rows", type=Path, default=ROWS, help=f"a rows file (default: {ROWS})")
        if cmd in ("pair", "pairs"):
            p.add_argument("--metric", choices=["val_nll", "fid"], default="val_nll")
        if cmd == "student-size":
            p.add_argument("--plot", type=Path)
    g = sub.add_parser("gains", help="mean and 95%% t interval of given per-seed paired gains")
    g.add_argument("values", type=float, nargs="+")
    args = parser.parse_args()
    if args.cmd == "gains":
        s = summarize(args.values)
        print(format_gain(s.to_dict() if s else None))
        return
    catalog = Catalog.of_folder(args.studies)
    if args.cmd == "table":
        rows = read_rows(args.rows)
        sys.stdout.write(sweep_table(rows, catalog, started_runs(catalog, rows)))
        return
    groups = read_groups(args.rows)
    if args.cmd == "pair":
        out = pair(groups, args.baseline, args.variant, args.metric)
    elif args.cmd == "pairs":
        out = pairs_table(groups, catalog, args.metric)
    elif args.cmd == "horizon":
        out = horizon(groups, args.baseline, args.variant)
    elif args.cmd == "extrapolate":
        out = extrapolate(groups, args.baseline, args.variant)
    else:
        out = student_size(groups, catalog, args.plot)
    sys.stdout.write(out)


if __name__ == "__main__":
    main()
