"""`mirai plot`: loss terms, learning rate and gradient norm against step, from the metrics.jsonl of one or more
runs, in one PNG, to compare runs by eye."""

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


def plot_runs(runs: list[str | Path], out: str | Path) -> Path:
    """One row of panels per quantity (each loss term, lr, grad norm), one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mirai_cli.files.atomic import atomic_path

    data = {str(run): read_run(run) for run in runs}
    panels = [*loss_terms(data), "lr", "grad_norm"]
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, panels):
        for label, records in data.items():
            points = [(r["step"], r[name]) for r in records if isinstance(r.get(name), (int, float))]
            if points:
                ax.plot(*zip(*points), label=Path(label).name or label)
        ax.set_title(name)
        ax.set_xlabel("step")
        if name != "lr" and all(v > 0 for r in data.values() for v in [x.get(name) for x in r] if isinstance(v, float)):
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize="small")
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out
