"""ForesightObjective: projector heads + aligned pairs -> the foresight loss terms.

Training-only: its parameters go into the training checkpoint (for resume) but never into the sampling
weights; a checkpoint's model/EMA weights load into a plain GPT.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mirai_cli.foresight.layouts import Border, HeadPairs, Layout, TeacherSpace, aligned_pairs
from mirai_cli.foresight.loss import foresight_losses, head_key
from mirai_cli.foresight.projector import FusedProjectors


class ForesightObjective(nn.Module):
    """One projector per head. forward(student [B, N, D], teacher [B, M, Dt], weights) -> loss dict.

    student: the GPT feature in sequence positions (after block `depth`, or the final normed hidden state).
    teacher: EMA features in sequence positions ([B, N, Dt]) or encoder features in cells ([B, h*w, Dt]),
    matching the `teacher_space` the pairs were built for. Works for any GPT width and teacher width.
    Each head's whole MLP runs on its own positions only (dropped border pairs cost nothing).
    """

    def __init__(self, heads: Sequence[HeadPairs], student_dim: int, teacher_dim: int, hidden_dim: int = 2048) -> None:
        super().__init__()
        if not heads:
            raise ValueError("ForesightObjective needs at least one head")
        self.offsets = [h.offset for h in heads]
        self.num_pairs = [len(h) for h in heads]
        self.student_dim, self.teacher_dim = int(student_dim), int(teacher_dim)
        self.projectors = FusedProjectors(len(heads), student_dim, teacher_dim, hidden_dim)
        # Non-persistent: derived from the preset, they move with .to(device) but stay out of checkpoints.
        # used: the student positions some head uses; head k reads rows rows_k of them.
        used = sorted({int(i) for h in heads for i in h.student_index})
        row_of = {pos: row for row, pos in enumerate(used)}
        self.register_buffer("student_used", torch.tensor(used, dtype=torch.long), persistent=False)
        for k, h in enumerate(heads):
            rows = torch.tensor([row_of[int(i)] for i in h.student_index], dtype=torch.long)
            self.register_buffer(f"rows_{k}", rows, persistent=False)
            self.register_buffer(f"teacher_index_{k}", h.teacher_index.clone(), persistent=False)
        self._min_teacher_len = max((int(h.teacher_index.max()) + 1 for h in heads if len(h)), default=0)
        self._min_student_len = max((int(h.student_index.max()) + 1 for h in heads if len(h)), default=0)

    @classmethod
    def from_layout(
        cls,
        grid: tuple[int, int],
        student_dim: int,
        teacher_dim: int,
        teacher_space: TeacherSpace,
        layout: Layout = "2d",
        k: int = 3,
        offsets: Sequence[int | Sequence[int]] | None = None,
        border: Border = "drop",
        hidden_dim: int = 2048,
        align_class: bool = True,
    ) -> ForesightObjective:
        heads = aligned_pairs(grid, layout, k, offsets=offsets, border=border, teacher_space=teacher_space,
                              align_class=align_class)
        return cls(heads, student_dim, teacher_dim, hidden_dim)

    @property
    def num_heads(self) -> int:
        return len(self.projectors)

    def loss_keys(self) -> list[str]:
        """Names of the logged terms, in order (per head, then the weighted total)."""
        return [head_key(k) for k in range(self.num_heads)] + ["foresight"]

    def forward(
        self, student: torch.Tensor, teacher: torch.Tensor, weights: Sequence[float]
    ) -> dict[str, torch.Tensor]:
        if student.shape[-1] != self.student_dim or student.shape[1] < self._min_student_len:
            raise ValueError(f"student feature {tuple(student.shape)}: expected [B, >={self._min_student_len}, "
                             f"{self.student_dim}]")
        if teacher.shape[-1] != self.teacher_dim or teacher.shape[1] < self._min_teacher_len:
            raise ValueError(f"teacher feature {tuple(teacher.shape)}: expected [B, >={self._min_teacher_len}, "
                             f"{self.teacher_dim}]")
        if len(weights) != self.num_heads:
            raise ValueError(f"{len(weights)} lambda values for {self.num_heads} heads")
        teacher = teacher.detach()  # a target, never a path for gradients
        rows = [getattr(self, f"rows_{k}") for k in range(self.num_heads)]
        predictions = self.projectors(student.index_select(1, self.student_used), rows)
        targets = [teacher.index_select(1, getattr(self, f"teacher_index_{k}")) for k in range(self.num_heads)]
        return foresight_losses(predictions, targets, weights)
