"""A training run's parts, built once by `build_run`: store and batch plan, model, EMA(s), teacher, objective,
optimizer, schedules. `Run.state_dict()` / `load_state_dict()` are the one place the checkpoint's entries are
named; checkpoint and resume both go through them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from mirai_cli.config import MiraiConfig
from mirai_cli.config.auto import resolve_compile
from mirai_cli.data.store import TokenStore
from mirai_cli.engine.batches import BatchPlan, duration_to_steps
from mirai_cli.engine.checkpoints import clean_temporary, load_checkpoint, read_meta
from mirai_cli.engine.ema import EMA
from mirai_cli.engine.optim import build_adamw
from mirai_cli.engine.parallel import full_state, load_full_state, parallelize, strategy, unsharded
from mirai_cli.engine.prefetch import BatchReader
from mirai_cli.engine.run_dir import prepare_run_dir, resolve_run_dir
from mirai_cli.engine.step import TrainStep
from mirai_cli.errors import MiraiError
from mirai_cli.foresight.objective import ForesightObjective
from mirai_cli.foresight.schedule import LambdaSchedule
from mirai_cli.foresight.teachers import Teacher
from mirai_cli.foresight.teachers.build import build_teacher
from mirai_cli.gpt.checkpoint import latest_checkpoint
from mirai_cli.gpt.config import GPTConfig
from mirai_cli.gpt.model import GPT
from mirai_cli.metrics.log import MetricsLog
from mirai_cli.metrics.monitor import Monitor
from mirai_cli.metrics.tensorboard_sink import open_sink
from mirai_cli.runtime.device import resolve_precision, set_tf32
from mirai_cli.runtime.distributed import DistEnv, barrier


def gpt_config_from(config: MiraiConfig) -> GPTConfig:
    """The GPT of the preset: the [model] fields GPTConfig shares with the schema, plus what the data decide."""
    m = config.model
    shared = {f.name: getattr(m, f.name) for f in dataclasses.fields(GPTConfig) if f.name in type(m).model_fields}
    return GPTConfig(**shared, vocab_size=config.vocab_size, grid=(config.grid, config.grid),
                     name=m.size if m.size != "custom" else "custom")


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


def tokenizer_record(store: TokenStore) -> dict[str, Any]:
    """What a checkpoint records of the tokenizer whose codes it was trained on."""
    return {"checkpoint": store.manifest.get("tokenizer_checkpoint"), "sha256": store.manifest.get("tokenizer_sha256")}


def check_same_tokenizer(folder: Path, store: TokenStore) -> None:
    """A model cannot continue on another tokenizer's codes (same size, other vocabulary)."""
    old = (read_meta(folder).get("tokenizer") or {}).get("sha256")
    new = tokenizer_record(store)["sha256"]
    if old and new and old != new:
        raise MiraiError(
            f"{folder} was trained on codes of tokenizer {old[:12]}... but the store {store.path} now holds codes "
            f"of tokenizer {new[:12]}...: re-encode the store with the run's tokenizer, or train a new run "
            "(--set train.run_dir=...) without --resume"
        )


@dataclass
class Run:
    config: MiraiConfig
    env: DistEnv
    run_dir: Path
    store: TokenStore
    plan: BatchPlan
    precision: str
    total_steps: int
    lr_warmup: int
    ckpt_every: int
    lambdas: LambdaSchedule
    gpt: GPT
    objective: Optional[ForesightObjective]
    teacher: Optional[Teacher]
    teacher_module: Optional[nn.Module]  # the EMA teacher's weights (gathered around its calls under FSDP)
    emas: dict[str, EMA]  # "sample_ema" (train.ema_decay) and, when it differs, "teacher_ema"
    step_module: TrainStep
    model: nn.Module  # step_module as the step calls it (DDP wrapper, compiled, or itself)
    optimizer: torch.optim.Optimizer
    reader: BatchReader
    metrics: MetricsLog
    meta: dict[str, Any]
    start_step: int = 0
    monitor: Monitor = field(init=False)

    def __post_init__(self) -> None:
        self.monitor = Monitor(self.env.device)

    def teacher_unsharded(self) -> Any:
        return unsharded(self.teacher_module)

    def state_dict(self, step: int) -> dict[str, Any]:
        """Full tensors of everything a resume needs (on rank 0; every process must call it)."""
        model, optimizer = full_state(self.step_module, self.optimizer)
        state: dict[str, Any] = {"model": _part(model, "gpt."), "optimizer": optimizer, "step": step,
                                 "rng": torch.get_rng_state()}
        if self.objective is not None:
            state["objective"] = _part(model, "objective.")
        for name, ema in self.emas.items():
            state[name] = full_state(ema.module)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        model = {f"gpt.{k}": v for k, v in state["model"].items()}
        if self.objective is not None:
            model.update({f"objective.{k}": v for k, v in state["objective"].items()})
        load_full_state(self.step_module, model, self.optimizer, state["optimizer"])
        for name, ema in self.emas.items():
            load_full_state(ema.module, state[name])
        self.start_step = int(state["step"])


def _part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def build_foresight(config: MiraiConfig, store: TokenStore, gpt: GPT, env: DistEnv, progress: bool
                    ) -> tuple[Optional[Teacher], Optional[ForesightObjective], dict[str, EMA]]:
    """The teacher, the projector heads and the EMAs: "sample_ema" (train.ema_decay) and, for a Mirai-E teacher
    whose decay differs, "teacher_ema". The engine updates, saves and shards every EMA here itself, so it never
    asks the teacher for anything but targets (the teacher's own EMA is the "teacher_ema" entry)."""
    tc, fc = config.train, config.foresight
    emas = {"sample_ema": EMA(gpt, tc.ema_decay)} if tc.ema_decay > 0 else {}
    teacher = build_teacher(config, store, gpt, env.device, make_ema=EMA, sample_ema=emas.get("sample_ema"),
                            env=env, progress=progress)
    if teacher is None:
        return None, None, emas
    if teacher.ema is not None and teacher.ema is not emas.get("sample_ema"):
        emas["teacher_ema"] = teacher.ema
    objective = ForesightObjective.from_layout(
        (config.grid, config.grid), student_dim=gpt.cfg.dim, teacher_dim=teacher.teacher_dim,
        teacher_space=teacher.teacher_space, layout=fc.layout, k=fc.k, offsets=fc.offsets,
        border=fc.border, hidden_dim=fc.projector_dim, align_class=fc.align_class,
    ).to(env.device)
    return teacher, objective, emas


def resume_step(run: Run) -> int:
    found = latest_checkpoint(run.run_dir)
    if found is None:
        raise MiraiError(f"{run.run_dir} has no complete checkpoint to resume from; start it without --resume")
    check_same_tokenizer(found[1], run.store)
    run.load_state_dict(load_checkpoint(found[1], needs=("model", *run.emas)))
    return run.start_step


def build_run(config: MiraiConfig, env: DistEnv, *, run_dir: Optional[Path] = None, resume: bool = False,
              progress: bool = True) -> Run:
    """Everything a run needs, on this process, resumed from the run folder's last checkpoint if asked."""
    tc, fc = config.train, config.foresight
    run_dir = Path(run_dir) if run_dir is not None else resolve_run_dir(config)
    precision = resolve_precision(tc.precision, env.device)
    set_tf32(tc.tf32)
    store = TokenStore.open(config.data.store)
    check_store_fits(store, config)
    plan = BatchPlan(num_images=len(store), num_crops=store.num_crops, global_batch=tc.global_batch_size,
                     world_size=env.world_size, rank=env.rank, micro_batch=tc.micro_batch_size or 0, seed=tc.seed)
    to_steps = lambda d: duration_to_steps(d, plan.steps_per_epoch)  # noqa: E731
    total_steps = to_steps(tc.duration)
    if env.is_main:  # rank 0 prepares the folder; the others wait so they never see a half-written one
        prepare_run_dir(run_dir, config, resume, {"store": str(store.path), "total_steps": total_steps,
                                                  "world_size": env.world_size, "precision": precision,
                                                  "parallel": strategy(env, tc.parallel)})
        clean_temporary(run_dir)
    barrier(env)
    torch.manual_seed(tc.seed)
    gpt_cfg = gpt_config_from(config)
    gpt = GPT(gpt_cfg).to(env.device)
    teacher, objective, emas = build_foresight(config, store, gpt, env, progress)
    teacher_ema = teacher.ema if teacher is not None else None
    step_module = TrainStep(gpt, objective, depth=fc.depth or gpt_cfg.layers, level=fc.level)
    # The EMA copies hold fp32 weights; the Mirai-E teacher among them computes in foresight.teacher_precision.
    ema_precision = precision if fc.teacher_precision == "bf16" else "fp32"
    model = parallelize(step_module, [e.module for e in emas.values()], env, tc.parallel, precision,
                        resolve_compile(tc.compile, env.device.type), tc.activation_checkpointing,
                        others_precision=ema_precision)
    meta = {"gpt_config": gpt_cfg.to_dict(), "preset": config.name, "tokenizer": tokenizer_record(store),
            "store": str(store.path), "grid": list(store.grid), "total_steps": total_steps,
            "foresight": {"source": fc.source, "level": fc.level, "depth": fc.depth, "k": fc.k}}
    run = Run(
        config=config, env=env, run_dir=run_dir, store=store, plan=plan, precision=precision,
        total_steps=total_steps, lr_warmup=to_steps(tc.lr_warmup),
        ckpt_every=max(1, to_steps(tc.ckpt_every)) if tc.ckpt_every else 0,
        lambdas=LambdaSchedule.build(fc.lambda_, fc.k, kind=fc.lambda_schedule, factor=fc.lambda_factor,
                                     at_step=to_steps(fc.lambda_at), warmup_steps=to_steps(fc.warmup),
                                     total_steps=total_steps),
        gpt=gpt, objective=objective, teacher=teacher,
        teacher_module=teacher_ema.module if teacher_ema is not None else None, emas=emas,
        step_module=step_module, model=model, optimizer=build_adamw(step_module.named_parameters(), tc.lr,
                                                                  tuple(tc.betas), tc.weight_decay, env.device),
        reader=BatchReader(store, plan, env.device, teacher.read_ahead if teacher is not None else None),
        metrics=MetricsLog(run_dir / "metrics.jsonl", enabled=env.is_main,
                           sink=open_sink(run_dir, tc.tensorboard and env.is_main)), meta=meta,
    )
    if resume:
        resume_step(run)
    run.metrics.truncate_after(run.start_step)  # a fresh start (or resume) drops lines a killed run left
    return run
