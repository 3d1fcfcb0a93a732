"""The one interface a training engine uses for foresight targets (docs/method.md, "Teacher interface").

    teacher = build_teacher(config, store, gpt, device, sample_ema=...)   # engine/teacher_source.py
    objective = ForesightObjective.from_layout(..., teacher_dim=teacher.teacher_dim,
                                               teacher_space=teacher.teacher_space)
    # data thread, ahead of the step (host only, no device work):
    batch.teacher = teacher.read_ahead(images, crops)       # cached features / crop pixels, or None
    # each micro-batch, inside the step (any autocast region: the teacher sets its own precision):
    target = teacher.targets(batch)                         # fp32 [B, M, teacher_dim], no grad
    # after optimizer.step():
    teacher.update(model)                                   # Mirai-E: the EMA moves; others: nothing
    # checkpoint / resume:
    state.update(teacher.state_dict()); teacher.load_state_dict(state)

`batch` is any object with `codes` [B, N] and `labels` [B] on the device, `images` / `crops` (store rows and
crop ids, numpy) and `teacher` (what read_ahead returned, moved to the device, or None).
Ordering (the method depends on it): targets at step t come from the EMA after step t-1: call `targets`
for every micro-batch before `update`.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol

import numpy as np
import torch
from torch import nn


class TeacherBatch(Protocol):
    codes: torch.Tensor
    labels: torch.Tensor
    images: np.ndarray
    crops: np.ndarray
    teacher: Optional[torch.Tensor]


class Teacher:
    """Base of the EMA, online-encoder and cached-encoder teachers; defaults for what a teacher lacks.

    teacher_space: "sequence" (cell c at sequence position c + 1, the EMA GPT) or "cells" (cell c at index c,
    an encoder), as `aligned_pairs` takes it. teacher_dim: the target width."""

    teacher_space: str = "cells"
    teacher_dim: int = 0

    def read_ahead(self, images: np.ndarray, crops: np.ndarray) -> Optional[torch.Tensor]:
        """Host-side input of `targets` that can be prepared in a background thread (None: nothing to read)."""
        return None

    def targets(self, batch: TeacherBatch) -> torch.Tensor:
        """fp32 targets [B, M, teacher_dim] of a micro-batch, without gradients."""
        raise NotImplementedError

    def update(self, model: nn.Module) -> None:
        """After the optimizer step: move the teacher (only an EMA teacher that owns its EMA does)."""

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint entries this teacher owns ({} when it owns no state)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` saved (`state` may hold other entries too)."""

    def describe(self) -> dict[str, Any]:
        """Plain data saying what produces the targets (for run metadata)."""
        return {"teacher_space": self.teacher_space, "teacher_dim": self.teacher_dim}
