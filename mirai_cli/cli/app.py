"""The `mirai` command: one Typer app, one module per subcommand. No ML code here."""

from __future__ import annotations

import typer

from mirai_cli import __version__
from mirai_cli.cli import ablate, eval_cmd, plot, presets, sample, tokenize, train

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
def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version")) -> None:
    """mirai: tokenize, train, sample, eval, ablate."""


def main() -> None:
    app()
