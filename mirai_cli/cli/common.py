"""What every command shares: the --preset/--set options, loading the config, and turning user errors into
one red line and a non-zero exit instead of a traceback."""

from __future__ import annotations

import errno
import functools
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from mirai_cli.config import MiraiConfig, load_config
from mirai_cli.config.schema import EVAL_SEED_MAX, SEED_MAX
from mirai_cli.errors import MiraiError

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

PresetOption = typer.Option(
    None, "--preset", "-p", help="preset name or .toml path; repeat to layer left to right (later wins)"
)
SetOption = typer.Option(None, "--set", "-s", help="override one field: section.key=value (repeatable)")


def in_range(flag: str, low: int, high: Optional[int] = None) -> Callable[[Optional[int]], Optional[int]]:
    """An option callback: an integer outside low..high is one error line (click's own message is a box)."""
    span = f"from {low} to {high}" if high is not None else f">= {low}"

    def check(value: Optional[int]) -> Optional[int]:
        if value is not None and (value < low or (high is not None and value > high)):
            fail(f"{flag} {value} is out of range: give a whole number {span}")
        return value

    return check


def SeedOption(help: str, evaluation: bool = False) -> Any:  # noqa: N802 - an option factory, like the constants
    """`--seed` of every command: the range of a preset's seed (config.schema.SEED_MAX; EVAL_SEED_MAX for
    evaluation's)."""
    return typer.Option(None, "--seed", help=help,
                        callback=in_range("--seed", 0, EVAL_SEED_MAX if evaluation else SEED_MAX))


def JobsOption(help: str) -> Any:  # noqa: N802
    """`--jobs`: processes run at once, at least one."""
    return typer.Option(None, "--jobs", "-j", help=help, callback=in_range("--jobs", 1))


def fail(message: str, exit_code: int = 2) -> None:
    """Print one error line and exit."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(exit_code)


def os_error_message(exc: OSError) -> str | None:
    """One line for the file-system errors a user can fix (full disk, permissions, a file where a folder belongs);
    None for the rest, which are bugs and keep their traceback. Every output is written atomically, so what was
    finished before the error is intact."""
    where = f" {exc.filename}" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (f"no space left to write{where} ({exc.strerror}): free some space and run the command again; the "
                "outputs finished before this are intact and the job continues where it stopped")
    fixes = {errno.EACCES: "check its permissions or choose another location",
             errno.EROFS: "the file system is read-only: choose another location",
             errno.ENOTDIR: "a file stands where a folder is needed: choose another path",
             errno.EISDIR: "a folder stands where a file is needed: give a file name",
             errno.EEXIST: "a file stands where a folder is needed: choose another path",
             errno.ENAMETOOLONG: "the name is too long for the file system: choose a shorter one"}
    if exc.errno in fixes:
        return f"cannot use{where} ({exc.strerror}): {fixes[exc.errno]}"
    return None


def handle_errors(func: F) -> F:
    """Run a command; a MiraiError becomes one line on stderr and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MiraiError as exc:
            fail(str(exc), exc.exit_code)
        except OSError as exc:
            message = os_error_message(exc)
            if message is None:
                raise
            fail(message, 1)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def config_from_options(presets: Optional[List[str]], overrides: Optional[List[str]], default: str = "tiny") -> MiraiConfig:
    """The config for a command: the given presets (or the default one) plus overrides."""
    return load_config(list(presets) if presets else [default], list(overrides or []))


def check_output_folder(path: Optional[Path], flag: str) -> None:
    """An output folder option must not name an existing file."""
    if path is not None and path.exists() and not path.is_dir():
        raise MiraiError(f"{flag} {path} is a file, but a folder is needed here: give a folder path")


def check_output_file(path: Optional[Path], flag: str) -> None:
    """An output file option must not name an existing folder, nor sit under a file."""
    if path is None:
        return
    try:
        path.is_dir()
    except OSError as exc:  # e.g. a name too long for the file system
        raise MiraiError(f"{flag} {path}: {exc.strerror}: choose a shorter name or another location") from None
    if path.is_dir():
        raise MiraiError(f"{flag} {path} is a folder, but a file is needed here: give a file name, e.g. "
                         f"{path / 'out'}{path.suffix or ''}")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise MiraiError(f"{flag} {path}: {parent} is a file, not a folder: choose another path")


def emit(text: str) -> None:
    """Machine-readable output (TOML, JSON, Markdown tables) to stdout exactly as given: rich would wrap long
    lines at the terminal width (80 columns when stdout is a file or a pipe) and break the format."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
