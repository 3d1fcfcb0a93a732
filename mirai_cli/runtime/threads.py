"""CPU threads, chosen in `main()` before torch (and its OpenMP runtime) loads. No torch import here.

OpenMP's default lets idle threads spin; when other jobs share the cores (`ablate --jobs N`, several torchrun
processes on one machine) the spinning threads steal the cores the working ones need and a step gets several
times slower and erratic. Then idle threads should sleep (OMP_WAIT_POLICY=PASSIVE) and each job should use its
share of the cores. A value the user set in the environment always wins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Optional

WAIT_POLICY = "OMP_WAIT_POLICY"
NUM_THREADS = "OMP_NUM_THREADS"


@dataclass(frozen=True)
class ThreadChoice:
    threads: Optional[int]  # None: torch's default (one per core)
    wait_policy: Optional[str]  # None: OpenMP's default (idle threads spin a while)
    why: str

    def describe(self) -> str:
        threads = "one per core" if self.threads is None else str(self.threads)
        policy = self.wait_policy or "default"
        return f"CPU threads {threads}, OMP_WAIT_POLICY {policy} ({self.why})"


CHOSEN: Optional[ThreadChoice] = None  # what main() chose, for the banners


def _option(argv: Sequence[str], names: Sequence[str]) -> Optional[str]:
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def _positive(text: Optional[str]) -> Optional[int]:
    return int(text) if text is not None and text.isdigit() and int(text) > 0 else None


def jobs_sharing_cores(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """Processes of ours that will run at once on this machine: `ablate --jobs N`, torchrun's local ranks."""
    jobs = _positive(_option(argv, ("--jobs", "-j"))) if "ablate" in argv else None
    local = _positive(environ.get("LOCAL_WORLD_SIZE"))
    return max(jobs or 1, local or 1)


def choose_threads(argv: Sequence[str], environ: Mapping[str, str], cpu_count: int) -> ThreadChoice:
    """The thread count and OpenMP wait policy for this command line (`--threads N` wins over the rest)."""
    jobs = jobs_sharing_cores(argv, environ)
    asked = _positive(_option(argv, ("--threads",)))
    set_threads = _positive(environ.get(NUM_THREADS))
    threads = asked or set_threads or (max(1, cpu_count // jobs) if jobs > 1 else None)
    policy = environ.get(WAIT_POLICY) or ("PASSIVE" if jobs > 1 else None)
    reasons = ["--threads"] if asked else []
    if jobs > 1:
        reasons.append(f"{jobs} jobs share {cpu_count} cores")
    if WAIT_POLICY in environ or (set_threads and not asked):
        reasons.append("set in the environment")
    return ThreadChoice(threads, policy, ", ".join(reasons) or "one job")


def apply_threads(choice: ThreadChoice, environ: MutableMapping[str, str]) -> None:
    """Put the choice into the environment torch reads when it loads (and child processes inherit)."""
    global CHOSEN
    if choice.threads is not None:
        environ[NUM_THREADS] = str(choice.threads)
    if choice.wait_policy is not None:
        environ[WAIT_POLICY] = choice.wait_policy
    CHOSEN = choice


def configure_threads(argv: Sequence[str]) -> ThreadChoice:
    choice = choose_threads(argv, os.environ, os.cpu_count() or 1)
    apply_threads(choice, os.environ)
    return choice
