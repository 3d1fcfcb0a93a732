"""`mirai plot RUN [RUN...]`: training curves of runs in one figure (PNG, PDF or SVG, by the --out suffix)."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from mirai_cli.cli.common import check_output_file, console, handle_errors


@handle_errors
def plot_command(
    runs: List[Path] = typer.Argument(..., help="run folders (or their metrics.jsonl)"),
    out: Path = typer.Option(Path("curves.png"), "--out", "-o", help="figure to write: .png, .pdf or .svg"),
) -> None:
    """Plot every loss term, the learning rate and the gradient norm against step, one line per run."""
    from mirai_cli.metrics.plot import figure_format, plot_runs

    figure_format(out)  # an unsupported suffix is refused before anything is read or drawn
    check_output_file(out, "--out")
    console.print(f"[green]wrote[/] {plot_runs(list(runs), out)}", highlight=False)
