"""`mirai plot RUN [RUN...]`: training curves of runs in one PNG."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from mirai_cli.cli.common import check_output_file, console, handle_errors


@handle_errors
def plot_command(
    runs: List[Path] = typer.Argument(..., help="run folders (or their metrics.jsonl)"),
    out: Path = typer.Option(Path("curves.png"), "--out", "-o", help="PNG to write"),
) -> None:
    """Plot every loss term, the learning rate and the gradient norm against step, one line per run."""
    from mirai_cli.metrics.plot import plot_runs

    check_output_file(out, "--out")
    console.print(f"[green]wrote[/] {plot_runs(list(runs), out)}", highlight=False)
