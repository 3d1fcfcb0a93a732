"""The `mirai` command: one Typer app, one module per subcommand. No ML code here."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from mirai_cli import __version__
from mirai_cli.cli import ablate, eval_cmd, plot, presets, sample, tokenize, train
from mirai_cli.runtime.threads import configure_threads

app = typer.Typer(
    name="mirai",
    help="Train class-conditional autoregressive image generators with Mirai foresight.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(tokenize.app, name="tokenize")
app.command("train")(train.train_command)
app.command("sample")(sample.sample_command)
app.add_typer(eval_cmd.app, name="eval")
app.command("ablate")(ablate.ablate_command)
app.add_typer(presets.app, name="presets")
app.command("plot")(plot.plot_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mirai {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version"),
    threads: Optional[int] = typer.Option(
        None, "--threads", min=1, help="CPU threads per process (default: one per core, or the cores shared out "
        "when several jobs run at once)"),
) -> None:
    """mirai: tokenize, train, sample, eval, ablate."""
    # main() put --threads into the environment before torch loaded; this covers callers that bypass main().
    if threads is not None and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def main() -> None:
    # Before anything imports torch: its OpenMP runtime reads the thread settings once, when it loads.
    configure_threads(sys.argv[1:])
    app()
