"""`mirai train`: GPT + foresight on a token store, one CPU to many GPUs (torchrun)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from mirai_cli.cli.common import PresetOption, SetOption, config_from_options, console, handle_errors

if TYPE_CHECKING:  # the CLI imports torch and the engine only when a command runs
    from mirai_cli.config import MiraiConfig
    from mirai_cli.engine.trainer import TrainResult
    from mirai_cli.runtime.distributed import DistEnv


@handle_errors
def train_command(
    presets: Optional[List[str]] = PresetOption,
    overrides: Optional[List[str]] = SetOption,
    resume: bool = typer.Option(False, "--resume", help="continue the run in the run folder exactly where it stopped"),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="output folder (default: train.run_dir)"),
    steps: Optional[int] = typer.Option(None, "--stop-at", help="stop this call after this many total steps"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Train a class-conditional GPT (with Mirai foresight if the preset asks for it)."""
    from mirai_cli.engine.run_dir import resolve_run_dir
    from mirai_cli.engine.trainer import check_stop_at, train
    from mirai_cli.runtime.distributed import job_env

    check_stop_at(steps)
    config = config_from_options(presets, overrides)
    with job_env() as env:  # one process group for the whole command, left when it ends
        target = run_dir or resolve_run_dir(config)
        if env.is_main:
            print_plan(config, env, target, resume)
        result = train(config, resume=resume, run_dir=target, stop_at=steps, progress=not quiet, env=env)
        if env.is_main:
            print_result(result)
    if result.interrupted:  # `mirai train && mirai sample` must not sample a half-trained model
        raise typer.Exit(130)


def print_plan(config: MiraiConfig, env: DistEnv, target: Path, resume: bool) -> None:
    from mirai_cli.engine.parallel import strategy
    from mirai_cli.runtime import threads
    from mirai_cli.runtime.device import resolve_precision

    fc, m, t = config.foresight, config.model, config.train
    method = {"none": "LlamaGen baseline", "ema": "Mirai-E (EMA teacher)", "encoder": f"Mirai-I ({fc.encoder})"}[fc.source]
    console.print(f"[bold]mirai train[/] {config.name}: {method}")
    console.print(f"  model {m.size} ({m.layers} layers, dim {m.dim}, {m.heads} heads), grid {config.grid}x{config.grid}, "
                  f"vocab {config.vocab_size}, {m.num_classes} classes")
    if fc.source != "none":
        console.print(f"  foresight: level {fc.level}, layout {fc.layout}, k {fc.k}, block {fc.depth}, "
                      f"lambda {fc.lambda_} ({fc.lambda_schedule}), warm-up {fc.warmup}")
    console.print(f"  {t.duration} at global batch {t.global_batch_size} on {env.world_size} x {env.device.type} "
                  f"({strategy(env, t.parallel)}), lr {t.lr}, {resolve_precision(t.precision, env.device)}; "
                  f"store {config.data.store} -> {target}{' (resume)' if resume else ''}")
    if threads.CHOSEN is not None and env.device.type == "cpu":
        console.print(f"  {threads.CHOSEN.describe()}")


def print_result(result: TrainResult) -> None:
    status = "interrupted, checkpoint saved" if result.interrupted else "done"
    loss = result.last_metrics.get("loss")
    console.print(f"[green]{status}[/]: step {result.step}/{result.total_steps}"
                  + (f", loss {loss:.4f}" if loss is not None else "") + f" -> {result.run_dir}")
    if result.interrupted:
        console.print(f"continue with: mirai train ... --resume --run-dir {result.run_dir}")
