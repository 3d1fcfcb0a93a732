"""Atomic writes, the one implementation every module uses: write to a temporary name next to
the target, flush it to disk, then rename it into place, so a crash never leaves a half-written file."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mirai_cli.errors import MiraiError

TMP_STEM_CHARS = 64  # a long target name must not make its temporary name too long for the file system


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary name next to `path`; on success it is synced and replaces `path` in one step. A
    file-system error about the temporary name (or the folder) is raised naming `path`, the file the user asked
    for; the temporary file is removed on every failure."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem[:TMP_STEM_CHARS]}.tmp{os.getpid()}-{threading.get_ident()}{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        ours = {str(tmp), str(path), *map(str, path.parents)}
        if exc.filename is None or str(exc.filename) not in ours:
            raise  # about another file (an input read while writing): its own name is the right one
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        with contextlib.suppress(OSError):  # gone already, or a name the file system refused
            tmp.unlink()


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, obj: Any, *, indent: int = 2, sort_keys: bool = False) -> Path:
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, default=str) + "\n")


def save_npy(path: str | Path, array: np.ndarray) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)  # a handle: np.save appends ".npy" to a name that lacks it
    return Path(path)


def save_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)  # a handle, not a name: np.savez appends ".npz" to a name that lacks it
    return Path(path)


def torch_save(obj: Any, path: str | Path) -> Path:
    import torch

    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as e:  # torch reports a failed write (full disk, quota) as a RuntimeError
            if "inline_container" not in str(e) and "write" not in str(e):
                raise
            raise OSError(errno.ENOSPC, f"writing failed: {str(e)[:80]}", str(path)) from e
    return Path(path)


TEMP_GLOB = ".*.tmp*"  # the names atomic_path (and other scratch writers) use


def remove_temp_files(folder: str | Path) -> int:
    """Delete the temporary files a killed job left in `folder` (not recursive). Call it only while holding the
    folder's lock: a live job's temporary files look the same."""
    folder = Path(folder)
    removed = 0
    for p in folder.glob(TEMP_GLOB) if folder.is_dir() else ():
        if p.is_file():
            p.unlink(missing_ok=True)
            removed += 1
    return removed


def torch_load_state(path: str | Path, what: str, fix: str, *, map_location: Any = "cpu", mmap: bool = False,
                     required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A training state `torch_save` wrote, read safely (tensors and plain data only): a damaged or truncated
    file, a pickle that wants to run code, or a dict without the `required` keys is one MiraiError naming
    `what` and `fix`. Shared by the GPT training checkpoints and the tokenizer fit."""
    import torch

    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as exc:  # a damaged file must not become a traceback
        raise MiraiError(f"cannot read {what} {path} ({type(exc).__name__}: {str(exc)[:200]}); {fix}") from None
    if not isinstance(state, dict) or not set(required) <= state.keys():
        raise MiraiError(f"{path} is not {what}: {fix}")
    return state
