"""AdamW with weight decay only on >= 2-dim tensors (LlamaGen), and the learning-rate schedule."""

from __future__ import annotations

import math
from typing import Iterable

import torch


def build_adamw(
    named_params: Iterable[tuple[str, torch.nn.Parameter]],
    lr: float,
    betas: tuple[float, float],
    weight_decay: float,
    device: torch.device,
) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for _, param in named_params:
        if not param.requires_grad:
            continue
        (decay if param.dim() >= 2 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # Fused: one kernel per step, and its step counters stay on the device (no host sync per step).
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=device.type in ("cuda", "cpu"))


def lr_at(step: int, base_lr: float, total_steps: int, warmup_steps: int, schedule: str, min_ratio: float) -> float:
    """Learning rate for optimizer step `step` (0-indexed): linear warm-up, then constant / cosine / linear
    decay to base_lr * min_ratio at total_steps. A pure function of the step, so resume is exact."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant" or total_steps <= warmup_steps:
        return base_lr
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    floor = base_lr * min_ratio
    if schedule == "cosine":
        return floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return base_lr + (floor - base_lr) * progress
    raise ValueError(f"unknown lr schedule {schedule!r}")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
