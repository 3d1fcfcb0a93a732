"""One optimizer step, with no host sync: every loss, the grad norm and the non-finite flag stay on the device.

The step (the global batch, split over processes and micro-batches):
  1. teacher targets (EMA as of the previous step / cached or online encoder features), no grad;
  2. student forward under autocast: NTP loss + lambda_k * foresight loss of head k;
  3. backward (gradients synced on the last micro-batch only), clip, AdamW step; 4. EMA updates.
The loop reads the device tensors back only at log and checkpoint steps (metrics/monitor.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import torch
from torch import nn

from mirai_cli.engine.optim import lr_at, set_lr
from mirai_cli.engine.parallel import clip_grad_norm, gradient_sync
from mirai_cli.engine.prefetch import DeviceBatch
from mirai_cli.foresight.objective import ForesightObjective
from mirai_cli.gpt.loss import next_token_loss
from mirai_cli.gpt.model import GPT
from mirai_cli.runtime.device import autocast

if TYPE_CHECKING:
    from mirai_cli.engine.run import Run


class TrainStep(nn.Module):
    """Everything that gets gradients, in one module so one DDP/FSDP wrapper syncs it all."""

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
        ntp = next_token_loss(out.logits, tokens)
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


@dataclass
class StepOutput:
    """One step's figures, still on the device: `losses[i]` is the local mean of term `keys[i]`."""

    keys: list[str]
    losses: torch.Tensor
    grad_norm: torch.Tensor
    lr: float
    lambda_: float


def seed_step(seed: int, step: int, rank: int) -> None:
    # Dropout and label drop draw from the global RNG; seeding it per step makes resume exact.
    torch.manual_seed((seed * 1_000_003 + step) * 4099 + rank)


def teacher_targets(run: Run, batch: DeviceBatch) -> torch.Tensor:
    """The foresight targets of a micro-batch (the teacher reads what was read ahead in `batch.teacher`: cached
    features or crop pixels). The one place the trainer calls the teacher."""
    assert run.teacher is not None
    with run.teacher_unsharded():  # in the teacher's own precision (foresight.teacher_precision)
        return run.teacher.targets(batch)


def train_step(run: Run, step: int, batches: list[DeviceBatch]) -> StepOutput:
    """Forward/backward over this process's micro-batches, then the optimizer and EMA updates."""
    lr = lr_at(step, run.config.train.lr, run.total_steps, run.lr_warmup, run.config.train.lr_schedule,
               run.config.train.lr_min_ratio)
    set_lr(run.optimizer, lr)
    weights = run.lambdas.weights(step)
    foresight_on = run.objective is not None and any(w > 0 for w in weights)
    seed_step(run.config.train.seed, step, run.env.rank)
    run.model.train()
    keys: list[str] = []
    total: Optional[torch.Tensor] = None
    for i, batch in enumerate(batches):
        teacher = teacher_targets(run, batch) if foresight_on else None
        with gradient_sync(run.model, enabled=i == len(batches) - 1):
            with autocast(run.env.device, run.precision):
                losses = run.model(batch.codes, batch.labels, teacher, weights)
            (losses["loss"] / len(batches)).backward()
        keys = list(losses)
        stacked = torch.stack([v.detach().float() for v in losses.values()]) / len(batches)
        total = stacked if total is None else total + stacked
    grad_norm = clip_grad_norm(run.step_module, run.config.train.grad_clip)
    run.monitor.observe(step, total, grad_norm)  # type: ignore[arg-type]
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    for ema in run.emas.values():
        ema.update(run.gpt)
    assert total is not None
    return StepOutput(keys, total, grad_norm, lr, weights[0] if weights else 0.0)
