"""The one interface a training engine uses for foresight targets (docs/method.md, "Teacher interface").

    teacher = build_teacher(config, store, gpt, device, make_ema=EMA, sample_ema=...)   # build.py
    objective = ForesightObjective.from_layout(..., teacher_dim=teacher.teacher_dim,
                                               teacher_space=teacher.teacher_space)
    # data thread, ahead of the step (host only, no device work):
    batch.teacher = teacher.read_ahead(images, crops)       # cached features / crop pixels, or None
    # each micro-batch, inside the step (any autocast region: the teacher sets its own precision):
    target = teacher.targets(batch)                         # fp32 [B, M, teacher_dim], no grad
    # after optimizer.step(), and in checkpoints: the engine updates and saves `teacher.ema` (Mirai-E) with its
    # other EMAs; a teacher holds no other state.

`batch` is any object with `codes` [B, N] and `labels` [B] on the device, `images` / `crops` (store rows and
crop ids, numpy) and `teacher` (what read_ahead returned, moved to the device, or None).
Ordering (the method depends on it): targets at step t come from the EMA after step t-1: call `targets`
for every micro-batch of step t before the engine updates `teacher.ema`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

import numpy as np
import torch


class TeacherBatch(Protocol):
    codes: torch.Tensor
    labels: torch.Tensor
    images: np.ndarray
    crops: np.ndarray
    teacher: Optional[torch.Tensor]


@dataclass
class TargetBatch:
    """A TeacherBatch for callers without their own batch type (tests, benches)."""

    codes: torch.Tensor
    labels: torch.Tensor
    images: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    crops: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    teacher: Optional[torch.Tensor] = None


class Teacher:
    """Base of the EMA, online-encoder and cached-encoder teachers: what the engine uses of a teacher.

    teacher_space: "sequence" (cell c at sequence position c + 1, the EMA GPT) or "cells" (cell c at index c,
    an encoder), as `aligned_pairs` takes it. teacher_dim: the target width."""

    teacher_space: str = "cells"
    teacher_dim: int = 0
    ema: Any = None  # Mirai-E: the EMA whose weights give the targets (the engine moves and saves it)

    def read_ahead(self, images: np.ndarray, crops: np.ndarray) -> Optional[torch.Tensor]:
        """Host-side input of `targets` that can be prepared in a background thread (None: nothing to read)."""
        return None

    def targets(self, batch: TeacherBatch) -> torch.Tensor:
        """fp32 targets [B, M, teacher_dim] of a micro-batch, without gradients."""
        raise NotImplementedError

    def nonfinite_problem(self) -> Optional[str]:
        """Asked after a loss went non-finite: one line if the teacher's own data is at fault (None: it is not)."""
        return None
