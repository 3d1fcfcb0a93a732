"""`mirai presets list | show | validate`."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer
from rich.syntax import Syntax
from rich.table import Table

from mirai_cli.cli.common import PresetOption, SetOption, console, emit, handle_errors
from mirai_cli.config import load_config, resolved_toml, shipped_preset_names
from mirai_cli.config.loader import find_preset, preset_text, read_toml

app = typer.Typer(help="List, show and validate presets.", no_args_is_help=True)


@app.command("list")
@handle_errors
def list_presets() -> None:
    """The shipped presets with their one-line descriptions."""
    table = Table(title="mirai presets", show_lines=False)
    table.add_column("name", style="bold cyan")
    table.add_column("extends")
    table.add_column("description")
    for name in shipped_preset_names():
        raw = read_toml(find_preset(name))
        parent = raw.get("extends", "")
        table.add_row(name, ", ".join(parent) if isinstance(parent, list) else parent, raw.get("description", ""))
    console.print(table)
    console.print("Layer presets left to right: [bold]--preset mirai-e --preset tiny[/]; override: [bold]--set train.lr=3e-4[/]")


@app.command("show")
@handle_errors
def show(
    names: List[str] = typer.Argument(..., help="preset names or paths, layered left to right"),
    resolved: bool = typer.Option(False, "--resolved", help="print every field after extends, layering and --set"),
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Print a preset: as written, or fully resolved."""
    if resolved or len(names) > 1 or overrides:
        text = resolved_toml(load_config(names, overrides))
    else:
        load_config(names)  # validate before showing
        text = preset_text(find_preset(names[0]))
    if sys.stdout.isatty():
        console.print(Syntax(text, "toml", theme="ansi_dark", background_color="default"))
    else:  # a file or a pipe: the TOML exactly, never wrapped or styled
        emit(text)


@app.command("validate")
@handle_errors
def validate(
    files: List[str] = typer.Argument(..., help="preset files to check; - reads one from standard input"),
    presets: Optional[List[str]] = PresetOption,
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Check preset files (optionally layered over --preset bases); exit 2 on the first problem."""
    for path in files:
        config = load_config([*(presets or []), str(path)], overrides)
        console.print(f"[green]ok[/] {path}: {config.model.size} {config.model.layers} layers, "
                      f"foresight {config.foresight.source}, grid {config.grid}x{config.grid}")
