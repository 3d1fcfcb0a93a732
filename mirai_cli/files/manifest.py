"""What every output folder records about how it was made: mirai and library versions, the git commit of the
code, the seed and the time. One function, used by every command that writes a folder (run folders, token
stores, sample folders, tokenizer fits)."""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mirai_cli import __version__


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the mirai source in use ("unknown" outside a git checkout)."""
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions(*packages: str) -> dict[str, str]:
    """mirai, python, torch, numpy and the platform, plus the installed version of each of `packages`."""
    from importlib import metadata

    out = {"mirai": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("torch", "numpy", *packages):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def manifest(kind: str, seed: int | None, **extra: Any) -> dict[str, Any]:
    """The provenance block of an output folder's manifest; `extra` adds the command's own fields."""
    return {"kind": kind, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git_commit": git_commit(),
            "versions": versions(), "seed": seed, **extra}
