"""Folder locks: a job owns its output folder (run folder, token store, sample folder, tokenizer folder) while
it writes it, so two jobs never interleave their files. A second job stops with one line naming the holder.

The lock is a small JSON file (pid, host, command, start time) created with O_EXCL. A lock whose process is
gone (same host, pid dead or reused) is stale and taken over; a lock from another host is trusted, since its
process cannot be checked from here (the message says how to remove it by hand). A lock file that cannot be
read as such (empty or garbled: a crash between creating and writing it) is stale too, once it is older than
the moment a live job needs to write it (`FRESH_S`); it is taken over with a warning.

Why pid files and not OS locks (flock, the `filelock` package): flock is unreliable on the shared and network
file systems that runs and stores live on (NFS, Lustre), and a lock file that names its pid, host and start
time says who holds a folder and lets a dead holder's lock be told apart; it also adds no dependency."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mirai_cli.errors import MiraiError

LOCK_FILE = ".mirai.lock"
FRESH_S = 2.0  # an unreadable lock younger than this may be a live job's, between creating and writing it

# folder -> how many times this process holds it (a job may lock a folder it already owns, e.g. ablate)
_held: dict[Path, int] = {}


class FolderLocked(MiraiError):
    """Another live job writes this folder."""


def _process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (Linux), so that a reused pid is not mistaken for the holder."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this host (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    return True


def _readable(holder: dict[str, Any]) -> bool:
    """A lock file that names a holder (a pid and a host); anything else is the remains of a crash."""
    return isinstance(holder.get("pid"), int) and isinstance(holder.get("host"), str)


def _holder_alive(holder: dict[str, Any]) -> bool:
    """Whether the job a lock file names still runs: same pid and same start time (a reused pid is not it)."""
    if holder.get("host") != socket.gethostname():
        return True  # cannot tell: trust it
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0 or not pid_alive(pid):
        return False
    started = holder.get("process_start")
    return started is None or _process_start(pid) in (None, started)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        holder = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # half-written by a job killed while locking: stale
    return holder if isinstance(holder, dict) else {}


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def describe(holder: dict[str, Any]) -> str:
    return (f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')}: "
            f"{holder.get('command')}")


def _command() -> str:
    program = "mirai" if "mirai" in Path(sys.argv[0]).as_posix() else Path(sys.argv[0]).name
    return " ".join([program, *sys.argv[1:]])


Inputs = Mapping[str, "str | Path | None"]  # what a job reads, by setting name: {"data.store": "stores/x"}


def check_not_an_input(folder: str | Path, inputs: Inputs) -> None:
    """The one rule for output folders: an output folder is never one of its job's inputs, nor inside one (a run
    folder in its token store would overwrite the store's manifest). Inputs that do not exist are not compared
    (a built-in data set name is not a path)."""
    out = Path(folder).resolve()
    for name, given in inputs.items():
        if given is None or not Path(given).exists():
            continue
        source = Path(given).resolve()
        if out == source or source in out.parents:
            where = "is" if out == source else "is inside"
            raise MiraiError(f"output folder {folder} {where} {name} {given}, an input of this job: choose another "
                             "output folder (nothing was written)")


def acquire(folder: str | Path, inputs: Inputs | None = None) -> Path:
    """Lock `folder` (created if missing) for this process until release() or the process ends; raises
    FolderLocked if a live job holds it. `inputs`: what the job reads, which the folder must not be nor be
    inside (`check_not_an_input`); checked before anything is created."""
    check_not_an_input(folder, inputs or {})
    folder = Path(folder).resolve()
    if folder in _held:
        _held[folder] += 1
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
          "since": time.strftime("%Y-%m-%dT%H:%M:%S"), "process_start": _process_start(os.getpid())}
    for _ in range(20 + int(FRESH_S / 0.05)):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(path)
            if holder is None:
                continue  # released meanwhile
            if not _readable(holder):
                if _age(path) < FRESH_S:
                    time.sleep(0.05)  # its job may be writing it now
                    continue
                print(f"warning: {path} is empty or garbled (a job that crashed while locking); taking it over",
                      file=sys.stderr)
            elif _holder_alive(holder):
                raise FolderLocked(
                    f"{folder} is in use by another mirai job ({describe(holder)}); wait for it, or choose another "
                    f"folder (if that job is gone, delete {path})") from None
            # stale: move it aside under a unique name first, so two jobs taking over do not both win
            aside = path.with_name(f"{LOCK_FILE}.stale{os.getpid()}")
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, aside)
                aside.unlink()
            continue
        with os.fdopen(fd, "w") as handle:
            json.dump(me, handle)
        _held[folder] = 1
        return folder
    raise FolderLocked(f"could not lock {folder}: other jobs keep taking {path}; try again")


def release(folder: str | Path) -> None:
    folder = Path(folder).resolve()
    if folder not in _held:
        return
    _held[folder] -= 1
    if _held[folder] > 0:
        return
    del _held[folder]
    path = folder / LOCK_FILE
    holder = _read(path)
    if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def folder_lock(folder: str | Path, inputs: Inputs | None = None) -> Iterator[Path]:
    """Hold the lock of `folder` (never one of `inputs`, nor inside one) for the duration of the block."""
    path = acquire(folder, inputs)
    try:
        yield path
    finally:
        release(path)


@atexit.register
def _release_all() -> None:
    for folder in list(_held):
        _held[folder] = 1
        release(folder)
