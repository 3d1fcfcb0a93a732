"""The training loop: GPT next-token prediction plus the Mirai foresight loss. `build_run` makes the parts,
`train_step` runs one optimizer step on the device, and the loop below reads the device back only at log and
checkpoint steps (figures, NaN guard, Ctrl-C), while the next step's data is read in the background."""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from mirai_cli.config import MiraiConfig
from mirai_cli.engine.checkpoints import disk_full, save_checkpoint, write_error
from mirai_cli.engine.prefetch import Prefetcher
from mirai_cli.engine.run import Run, build_run
from mirai_cli.engine.run_dir import resolve_run_dir
from mirai_cli.engine.step import StepOutput, train_step
from mirai_cli.errors import MiraiError, TrainingDiverged
from mirai_cli.gpt.checkpoint import latest_checkpoint
from mirai_cli.gpt.config import GPTConfig
from mirai_cli.metrics.monitor import Reading
from mirai_cli.runtime.distributed import DistEnv, barrier, job_env
from mirai_cli.runtime.progress import make_progress


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    total_steps: int
    last_metrics: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False


class Interrupt:
    """Ctrl-C (SIGINT) sets a flag: the loop finishes the step in flight, saves and returns."""

    def __init__(self) -> None:
        self.requested = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[Interrupt]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, lambda signum, frame: setattr(self, "requested", True))
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


def check_stop_at(stop_at: Optional[int]) -> None:
    if stop_at is not None and stop_at < 1:
        raise MiraiError(f"--stop-at must be a step count >= 1 (this call stops once the run reaches it), got {stop_at}")


def read_device(run: Run, out: StepOutput, interrupted: bool) -> Reading:
    """Figures of the step just done; stops the run, before anything is saved, if any step went non-finite."""
    reading = run.monitor.read(out.keys, out.losses, out.grad_norm, run.env, interrupted)
    if reading.diverged:
        last = latest_checkpoint(run.run_dir)
        kept = f"the last good checkpoint is {last[1]}" if last else "no checkpoint was written yet"
        where = f"at step {reading.first_bad_step + 1}" if reading.first_bad_step is not None else "on another process"
        cause = run.teacher.nonfinite_problem() if run.teacher is not None else None
        if cause is not None:  # a damaged teacher cache, not the learning rate
            raise TrainingDiverged(f"loss became non-finite {where}: {cause}")
        raise TrainingDiverged(
            f"loss became non-finite {where} (loss {reading.losses.get('loss')}, grad norm {reading.grad_norm:.3g}); "
            f"stopped. {kept}; lower train.lr or use train.precision=fp32 and --resume"
        )
    return reading


def checkpoint(run: Run, step: int) -> None:
    state = run.state_dict(step)  # a collective under FSDP: every process takes part
    if run.env.is_main:
        save_checkpoint(run.run_dir, step, state, run.meta, GPTConfig.from_dict(run.meta["gpt_config"]),
                        run.config.train.keep_last)
    barrier(run.env)


def metrics_record(done: int, out: StepOutput, reading: Reading, seconds: float, steps: int, run: Run) -> dict[str, Any]:
    tokens = run.plan.global_batch * run.store.grid[0] * run.store.grid[1] * steps
    return {"step": done, "lr": out.lr, "grad_norm": reading.grad_norm, "step_time": seconds / steps,
            "tokens_per_s": tokens / seconds, "lambda": out.lambda_, **reading.losses}


def one_line_when_disk_full(func: Callable[..., TrainResult]) -> Callable[..., TrainResult]:
    """A full disk while writing the run folder (preset, metrics) is one clear error, not a traceback."""

    @functools.wraps(func)
    def wrapper(config: MiraiConfig, **kwargs: Any) -> TrainResult:
        try:
            return func(config, **kwargs)
        except OSError as exc:
            if not disk_full(exc):
                raise
            run_dir = Path(kwargs.get("run_dir") or resolve_run_dir(config))
            raise write_error(Path(exc.filename or run_dir), exc, run_dir) from None

    return wrapper


@one_line_when_disk_full
def train(config: MiraiConfig, *, resume: bool = False, run_dir: Optional[Path] = None, stop_at: Optional[int] = None,
          progress: bool = True, env: Optional[DistEnv] = None) -> TrainResult:
    """Train (or resume) the run described by `config`. `stop_at` ends this call after that many total steps
    (with a checkpoint) without changing the run's length: ablate uses it for evaluation rounds."""
    check_stop_at(stop_at)
    with job_env(env) as env:  # torchrun's group, if any, is left when the job ends
        return train_run(build_run(config, env, run_dir=run_dir, resume=resume, progress=progress), stop_at, progress)


def train_run(run: Run, stop_at: Optional[int], progress: bool) -> TrainResult:
    """The loop over a built run's steps, up to `stop_at` (default: the run's end)."""
    config, env = run.config, run.env
    tc = config.train
    end = min(run.total_steps, stop_at) if stop_at is not None else run.total_steps
    result = TrainResult(run_dir=run.run_dir, step=run.start_step, total_steps=run.total_steps)
    with Interrupt().installed() as interrupt, Prefetcher(run.reader, end) as data, \
            make_progress(progress and env.is_main) as bar:
        task = bar.add_task(f"train {config.name}", total=end, completed=run.start_step, status="")
        since, timer = run.start_step, time.perf_counter()
        for step in range(run.start_step, end):
            out = train_step(run, step, data.get(step))
            done = step + 1
            log_now = done % tc.log_every == 0 or done == end or done == run.start_step + 1
            save_now = (run.ckpt_every and done % run.ckpt_every == 0) or done == end
            # One process can stop on its own at any step; several agree at log steps (a collective).
            asked = interrupt.requested and not env.distributed
            if log_now or save_now or asked:
                reading = read_device(run, out, interrupt.requested)
                seconds, timer = time.perf_counter() - timer, time.perf_counter()
                record = metrics_record(done, out, reading, seconds, done - since, run)
                since, result.last_metrics, result.step = done, record, done
                if log_now:
                    run.metrics.write(record)
                bar.update(task, completed=done, status=f"loss {record['loss']:.4f} {record['tokens_per_s']:.0f} tok/s")
                if save_now or reading.stop:
                    checkpoint(run, done)
                if reading.stop:
                    result.interrupted = True
                    break
            else:
                bar.update(task, completed=done)
    return result
