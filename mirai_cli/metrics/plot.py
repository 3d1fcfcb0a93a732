"""`mirai plot`: loss terms, learning rate and gradient norm against step, from the metrics.jsonl of one or more
runs, in one figure (PNG, PDF or SVG), to compare runs by eye."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mirai_cli.errors import MiraiError

METRICS_FILE = "metrics.jsonl"
NOT_LOSSES = {"step", "lr", "grad_norm", "step_time", "tokens_per_s", "lambda"}  # logged, but not loss terms


def read_run(run: str | Path) -> list[dict[str, Any]]:
    from mirai_cli.metrics.log import read_metrics

    path = Path(run)
    path = path / METRICS_FILE if path.is_dir() else path
    if not path.is_file():
        raise MiraiError(f"{run} has no {METRICS_FILE}: give a run folder made by `mirai train` (or its metrics file)")
    records = [r for r in read_metrics(path) if isinstance(r.get("step"), (int, float))]
    if not records:
        raise MiraiError(f"{path} holds no logged steps yet: train longer, or lower train.log_every")
    return records


def loss_terms(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Every logged numeric term that is a loss (loss, ntp, foresight, foresight_h0, ...), in first-seen order."""
    names: dict[str, None] = {}
    for records in runs.values():
        for record in records:
            for key, value in record.items():
                if key not in NOT_LOSSES and isinstance(value, (int, float)) and not isinstance(value, bool):
                    names[key] = None
    return list(names)


FORMATS = ("png", "pdf", "svg")  # the figure's format follows the --out suffix


def figure_format(out: str | Path) -> str:
    """The format `out`'s suffix names; refused before any plotting when it is not one we write."""
    suffix = Path(out).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise MiraiError(f"--out {out}: the suffix picks the format; use .png, .pdf or .svg")
    return suffix


def run_labels(runs: list[str | Path]) -> list[str]:
    """One distinct label per run: its folder's name, with as many parent folders as it takes to tell runs with
    the same name apart (runs/a/x and runs/b/x -> a/x, b/x)."""
    folders = [Path(run).resolve() for run in runs]
    folders = [f.parent if f.name == METRICS_FILE else f for f in folders]
    depth = [1] * len(folders)

    def label(i: int) -> str:
        return "/".join(folders[i].parts[-depth[i]:])

    while True:
        seen: dict[str, list[int]] = {}
        for i in range(len(folders)):
            seen.setdefault(label(i), []).append(i)
        grow = [i for same in seen.values() if len(same) > 1 for i in same if depth[i] < len(folders[i].parts)]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
    labels = [label(i) for i in range(len(folders))]
    # The same run given twice: number the repeats.
    return [name if labels[:i].count(name) == 0 else f"{name} ({labels[:i].count(name) + 1})"
            for i, name in enumerate(labels)]


def plot_runs(runs: list[str | Path], out: str | Path) -> Path:
    """One panel per quantity (each loss term, lr, grad norm), one line per run. A run keeps one colour in every
    panel (panels some runs do not log would otherwise restart the colour cycle) and one legend for the figure."""
    fmt = figure_format(out)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mirai_cli.files.atomic import atomic_path

    data = dict(zip(run_labels(runs), (read_run(run) for run in runs)))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {label: cycle[i % len(cycle)] for i, label in enumerate(data)}
    panels = [*loss_terms(data), "lr", "grad_norm"]
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
    handles = {}
    for ax, name in zip(axes.flat, panels):
        for label, records in data.items():
            points = [(r["step"], r[name]) for r in records if isinstance(r.get(name), (int, float))]
            if points:
                handles[label], = ax.plot(*zip(*points), label=label, color=colour[label])
        ax.set_title(name)
        ax.set_xlabel("step")
        if name != "lr" and all(v > 0 for r in data.values() for v in [x.get(name) for x in r] if isinstance(v, float)):
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / (3.2 * rows)))  # room at the top for the legend
    fig.legend([handles[label] for label in data if label in handles], [label for label in data if label in handles],
               loc="upper center", ncol=min(4, len(data)), fontsize="small", frameon=False)
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format=fmt)
    plt.close(fig)
    return out
