"""What every command shares: the --preset/--set options, loading the config, and turning user errors into
one red line and a non-zero exit instead of a traceback."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, List, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from mirai_cli.config import MiraiConfig, load_config
from mirai_cli.errors import MiraiError

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

PresetOption = typer.Option(
    None, "--preset", "-p", help="preset name or .toml path; repeat to layer left to right (later wins)"
)
SetOption = typer.Option(None, "--set", "-s", help="override one field: section.key=value (repeatable)")


def fail(message: str, exit_code: int = 2) -> None:
    """Print one error line and exit."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(exit_code)


def handle_errors(func: F) -> F:
    """Run a command; a MiraiError becomes one line on stderr and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MiraiError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def config_from_options(presets: Optional[List[str]], overrides: Optional[List[str]], default: str = "tiny") -> MiraiConfig:
    """The config for a command: the given presets (or the default one) plus overrides."""
    return load_config(list(presets) if presets else [default], list(overrides or []))


def is_interactive() -> bool:
    return sys.stderr.isatty()
