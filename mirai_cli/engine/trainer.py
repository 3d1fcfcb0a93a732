"""The training loop: GPT next-token prediction plus the Mirai foresight loss. Reads top to bottom:
setup (store, model, teacher, optimizer, resume) -> steps -> checkpoints.

One step (optimizer update) = the global batch, split over processes and micro-batches:
  1. teacher features (EMA as of the previous step / cached or online encoder features), no grad;
  2. student forward under autocast: NTP loss + lambda_k * foresight loss of head k;
  3. backward, clip, AdamW step; 4. EMA update.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mirai_cli.config import MiraiConfig
from mirai_cli.data.store import TokenStore
from mirai_cli.engine.batches import BatchPlan, duration_to_steps
from mirai_cli.engine.checkpoints import latest_checkpoint, load_train_state, save_checkpoint
from mirai_cli.engine.distributed import DistEnv, all_reduce_mean, barrier, broadcast_object, init_distributed
from mirai_cli.engine.ema import EMA, unwrap_model
from mirai_cli.engine.metrics_log import MetricsLog
from mirai_cli.engine.optim import build_adamw, lr_at, set_lr
from mirai_cli.engine.run_dir import prepare_run_dir, resolve_run_dir
from mirai_cli.engine.teacher_source import build_teacher
from mirai_cli.errors import MiraiError, TrainingDiverged
from mirai_cli.foresight.objective import ForesightObjective
from mirai_cli.foresight.schedule import LambdaSchedule
from mirai_cli.foresight.teachers import TargetBatch
from mirai_cli.gpt.config import GPTConfig
from mirai_cli.gpt.model import GPT
from mirai_cli.progress import make_progress
from mirai_cli.runtime import autocast, resolve_precision


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    total_steps: int
    last_metrics: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False


def gpt_config_from(config: MiraiConfig) -> GPTConfig:
    m = config.model
    return GPTConfig(
        vocab_size=config.vocab_size, num_classes=m.num_classes, layers=m.layers, dim=m.dim, heads=m.heads,
        grid=(config.grid, config.grid), class_dropout=m.class_dropout, token_dropout=m.token_dropout,
        resid_dropout=m.resid_dropout, ffn_dropout=m.ffn_dropout, attn_dropout=m.attn_dropout,
        rope_base=m.rope_base, norm_eps=m.norm_eps, multiple_of=m.multiple_of, init_std=m.init_std,
        name=m.size if m.size != "custom" else "custom",
    )


def check_store_fits(store: TokenStore, config: MiraiConfig) -> None:
    """The token store must have been made for this preset's grid, codebook and classes."""
    where = f"token store {store.path}"
    if tuple(store.grid) != (config.grid, config.grid):
        raise MiraiError(
            f"{where} has a {store.grid[0]}x{store.grid[1]} token grid but the preset expects "
            f"{config.grid}x{config.grid} (data.image_size {config.data.image_size} / downsample "
            f"{config.tokenizer.downsample}); re-encode or fix data.image_size / tokenizer.ch_mult"
        )
    if store.codebook_size != config.vocab_size:
        raise MiraiError(
            f"{where} was made with a {store.codebook_size}-code tokenizer but the preset has "
            f"tokenizer.codebook_size = {config.vocab_size}"
        )
    num_classes = len(store.class_names) if store.class_names else int(np.max(store.labels)) + 1
    if num_classes != config.model.num_classes:
        raise MiraiError(
            f"{where} has {num_classes} classes but model.num_classes = {config.model.num_classes}; "
            f"set --set model.num_classes={num_classes}"
        )


class TrainStep(nn.Module):
    """Everything that gets gradients, in one module so one DDP wrapper syncs it all."""

    def __init__(self, gpt: GPT, objective: Optional[ForesightObjective], depth: int, level: str):
        super().__init__()
        self.gpt = gpt
        self.objective = objective
        self.depth = depth
        self.level = level

    def forward(
        self, tokens: torch.Tensor, labels: torch.Tensor, teacher: Optional[torch.Tensor], weights: list[float]
    ) -> dict[str, torch.Tensor]:
        use_feature = self.objective is not None and teacher is not None and self.level == "internal"
        out = self.gpt(tokens, labels, feature_depth=self.depth if use_feature else None)
        ntp = F.cross_entropy(out.logits.float().flatten(0, 1), tokens.flatten())
        losses = {"ntp": ntp}
        total = ntp
        if self.objective is not None:
            if teacher is not None:
                student = out.feature if self.level == "internal" else out.final_hidden
                terms = self.objective(student.float(), teacher.float(), weights)
                losses.update(terms)
                total = total + terms["foresight"]
            else:
                # Warm-up: keep the heads in the graph (DDP expects every parameter to get a gradient).
                total = total + 0.0 * sum(p.sum() for p in self.objective.parameters())
        losses["loss"] = total
        return losses


def _seed_step(seed: int, step: int, rank: int) -> None:
    # Dropout and label drop draw from the global RNG; seeding it per step makes resume exact.
    torch.manual_seed((seed * 1_000_003 + step) * 4099 + rank)


def train(
    config: MiraiConfig,
    *,
    resume: bool = False,
    run_dir: Optional[Path] = None,
    stop_at: Optional[int] = None,
    progress: bool = True,
    on_step: Optional[Callable[[int, dict[str, float]], None]] = None,
    env: Optional[DistEnv] = None,
) -> TrainResult:
    """Train (or resume) the run described by `config`. `stop_at` ends this call after that many total steps
    (with a checkpoint) without changing the run's length: ablate uses it for evaluation rounds."""
    env = env or init_distributed()
    run_dir = Path(run_dir) if run_dir is not None else resolve_run_dir(config)
    tc, fc = config.train, config.foresight
    device = env.device
    precision = resolve_precision(tc.precision, device)

    store = TokenStore.open(config.data.store)
    check_store_fits(store, config)
    plan = BatchPlan(
        num_images=len(store), num_crops=store.num_crops, global_batch=tc.global_batch_size,
        world_size=env.world_size, rank=env.rank, micro_batch=tc.micro_batch_size or 0, seed=tc.seed,
    )
    total_steps = duration_to_steps(tc.duration, plan.steps_per_epoch)
    to_steps = lambda d: duration_to_steps(d, plan.steps_per_epoch)  # noqa: E731

    # Rank 0 prepares the folder; the others wait so they never see a half-written one.
    if env.is_main:
        prepare_run_dir(run_dir, config, resume, {"store": str(store.path), "total_steps": total_steps,
                                                  "world_size": env.world_size, "precision": precision})
    barrier(env)

    torch.manual_seed(tc.seed)
    gpt_cfg = gpt_config_from(config)
    gpt = GPT(gpt_cfg).to(device)
    # EMA weights for sampling (train.ema_decay); the Mirai-E teacher reads it when foresight.ema_decay agrees.
    sample_ema = EMA(gpt, tc.ema_decay) if tc.ema_decay > 0 else None
    teacher = build_teacher(config, store, gpt, device, sample_ema=sample_ema, is_main=env.is_main,
                            wait=lambda: barrier(env), progress=progress)
    objective: Optional[ForesightObjective] = None
    if teacher is not None:
        objective = ForesightObjective.from_layout(
            (config.grid, config.grid), student_dim=gpt_cfg.dim, teacher_dim=teacher.teacher_dim,
            teacher_space=teacher.teacher_space, layout=fc.layout, k=fc.k, offsets=fc.offsets,
            border=fc.border, hidden_dim=fc.projector_dim, align_class=fc.align_class,
        ).to(device)
    lambdas = LambdaSchedule.build(
        fc.lambda_, fc.k, kind=fc.lambda_schedule, factor=fc.lambda_factor, at_step=to_steps(fc.lambda_at),
        warmup_steps=to_steps(fc.warmup), total_steps=total_steps,
    )
    step_module = TrainStep(gpt, objective, depth=fc.depth or gpt_cfg.layers, level=fc.level)

    optimizer = build_adamw(step_module.named_parameters(), tc.lr, tuple(tc.betas), tc.weight_decay, device)

    start_step = 0
    metrics = MetricsLog(run_dir / "metrics.jsonl", enabled=env.is_main)
    if resume:
        found = latest_checkpoint(run_dir)
        if found is None:
            raise MiraiError(f"{run_dir} has no complete checkpoint to resume from; start it without --resume")
        start_step, folder = found
        state = load_train_state(folder)
        _load_weights(gpt, folder / "model.safetensors")
        if sample_ema is not None:
            sample_ema.load_state_dict(state["sample_ema"])
        if teacher is not None:
            teacher.load_state_dict(state)
        if objective is not None:
            objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
        metrics.truncate_after(start_step)

    model: nn.Module = step_module
    if tc.compile:
        model = torch.compile(model)  # type: ignore[assignment]
    if env.distributed:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    meta = {
        "gpt_config": gpt_cfg.to_dict(),
        "preset": config.name,
        "tokenizer": {"checkpoint": store.manifest.get("tokenizer_checkpoint"),
                      "sha256": store.manifest.get("tokenizer_sha256")},
        "store": str(store.path),
        "grid": list(store.grid),
        "foresight": {"source": fc.source, "level": fc.level, "depth": fc.depth, "k": fc.k},
        "total_steps": total_steps,
    }

    def checkpoint(step: int) -> None:
        if not env.is_main:
            return
        state: dict[str, Any] = {"optimizer": optimizer.state_dict(), "step": step, "rng": torch.get_rng_state()}
        if sample_ema is not None:
            state["sample_ema"] = sample_ema.state_dict()
        if teacher is not None:
            state.update(teacher.state_dict())
        if objective is not None:
            state["objective"] = objective.state_dict()
        save_checkpoint(run_dir, step, gpt, sample_ema.module if sample_ema else None, state, meta, tc.keep_last)

    warmup_steps = to_steps(tc.lr_warmup)
    end_step = min(total_steps, stop_at) if stop_at is not None else total_steps
    ckpt_every = max(1, to_steps(tc.ckpt_every)) if tc.ckpt_every else 0
    result = TrainResult(run_dir=run_dir, step=start_step, total_steps=total_steps)
    tokens_per_step = plan.global_batch * store.grid[0] * store.grid[1]

    interrupted = {"flag": False}

    def on_sigint(signum: int, frame: Any) -> None:
        interrupted["flag"] = True  # finish the step in flight, save, exit cleanly

    previous = signal.signal(signal.SIGINT, on_sigint) if _main_thread() else None
    try:
        with make_progress(progress and env.is_main) as progress_bar:
            bar = progress_bar.add_task(f"train {config.name}", total=end_step, completed=start_step, status="")
            for step in range(start_step, end_step):
                t0 = time.perf_counter()
                lr = lr_at(step, tc.lr, total_steps, warmup_steps, tc.lr_schedule, tc.lr_min_ratio)
                set_lr(optimizer, lr)
                weights = lambdas.weights(step)
                foresight_on = objective is not None and any(w > 0 for w in weights)
                _seed_step(tc.seed, step, env.rank)
                sums: dict[str, float] = {}
                micro_batches = plan.local_micro_batches(step)
                gpt.train()
                for i, (images, crops) in enumerate(micro_batches):
                    codes = torch.from_numpy(store.codes.get(images, crops).astype(np.int64)).to(device)
                    labels = torch.from_numpy(store.labels[images].astype(np.int64)).to(device)
                    target = None
                    if foresight_on:  # in the teacher's own precision (foresight.teacher_precision)
                        assert teacher is not None
                        target = teacher.targets(TargetBatch(codes, labels, images, crops))
                    sync = contextlib.nullcontext()
                    if env.distributed and i < len(micro_batches) - 1:
                        sync = model.no_sync()  # type: ignore[operator]
                    with sync:
                        with autocast(device, precision):
                            losses = model(codes, labels, target, weights)
                        (losses["loss"] / len(micro_batches)).backward()
                    for key, value in losses.items():
                        sums[key] = sums.get(key, 0.0) + float(value.detach()) / len(micro_batches)
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    step_module.parameters(), tc.grad_clip if tc.grad_clip > 0 else float("inf")
                )
                loss_value = float(all_reduce_mean(torch.tensor(sums["loss"], device=device), env))
                if not math.isfinite(loss_value) or not math.isfinite(float(grad_norm)):
                    optimizer.zero_grad(set_to_none=True)
                    last = latest_checkpoint(run_dir)
                    kept = f"the last good checkpoint is {last[1]}" if last else "no checkpoint was written yet"
                    raise TrainingDiverged(
                        f"loss became {loss_value} at step {step} (grad norm {float(grad_norm):.3g}); stopped. "
                        f"{kept}; lower train.lr or use train.precision=fp32 and --resume"
                    )
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if sample_ema is not None:
                    sample_ema.update(gpt)
                if teacher is not None:
                    teacher.update(gpt)
                done = step + 1
                dt = time.perf_counter() - t0
                record = {"step": done, "lr": lr, "grad_norm": float(grad_norm), "step_time": dt,
                          "tokens_per_s": tokens_per_step / dt, "lambda": weights[0] if weights else 0.0,
                          **{k: float(all_reduce_mean(torch.tensor(v, device=device), env)) for k, v in sums.items()}}
                result.last_metrics = record
                result.step = done
                if done % tc.log_every == 0 or done == end_step or done == start_step + 1:
                    metrics.write(record)
                progress_bar.update(bar, completed=done, status=f"loss {record['loss']:.4f} ntp {record['ntp']:.4f} "
                                                                f"{record['tokens_per_s']:.0f} tok/s")
                if on_step is not None:
                    on_step(done, record)
                stop_now = bool(broadcast_object(interrupted["flag"], env))
                if (ckpt_every and done % ckpt_every == 0) or done == end_step or stop_now:
                    checkpoint(done)
                if stop_now:
                    result.interrupted = True
                    break
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return result


def _load_weights(model: nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    unwrap_model(model).load_state_dict(load_file(str(path)), strict=True)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()

