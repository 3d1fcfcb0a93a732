"""The user cache, the one place its root is decided: `$MIRAI_CACHE`, else `$XDG_CACHE_HOME/mirai`, else
`~/.cache/mirai`. Each feature keeps a subfolder (eval: reference features; store_checks: which token-store
shards were already verified). Nothing the user passes as an input is written to; the cache is."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "MIRAI_CACHE"


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.path.expanduser(os.environ[CACHE_ENV]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mirai"
