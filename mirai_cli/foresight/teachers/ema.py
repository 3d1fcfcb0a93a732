"""Mirai-E teacher: the EMA of the generator itself (docs/method.md, Foresight).

Ordering in the training step (the engine's job, stated here because the method depends on it):
    1. targets = teacher.targets(batch)     <- EMA as of the previous step
    2. student forward/backward, optimizer.step()
    3. ema.update(model)                    <- the engine moves the EMA (`teacher.ema`)
so the target at step t comes from the EMA after step t-1, never from weights that saw this batch.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
from torch import nn

from mirai_cli.foresight.teachers.base import Teacher, TeacherBatch
from mirai_cli.foresight.teachers.targets import TargetOptions, normalise_targets, teacher_autocast
from mirai_cli.gpt.model import compile_blocks


class EMATeacher(Teacher):
    """Runs the EMA GPT in eval mode (no dropout, no label drop) without gradients, only up to block
    `depth`, on the same tokens and the true labels. Targets: [B, N, D] in sequence positions (cell c at
    position c + 1), i.e. `teacher_space="sequence"` for `aligned_pairs`.

    ema: an EMA (engine/ema.py: `.module`), the engine's sampling EMA or one of the teacher's own decay; the
    engine updates and saves it either way.
    level="output" (the injection ablation) targets the EMA's final normed hidden state instead; that needs
    the full forward. compile (train.compile resolved): its blocks run torch.compiled (`compile_blocks`), the
    8-block forward of every micro-batch fused like the student's. options: precision ("fp32", the paper's code: the fp32 EMA outside autocast, or "bf16")
    and norm / norm_alpha (`normalise_targets`; "spatial" statistics come from the cell positions 1.., the
    class position 0 is normalised with them).
    """

    teacher_space = "sequence"

    def __init__(
        self, ema: Any, depth: int, level: Literal["internal", "output"] = "internal",
        options: Optional[TargetOptions] = None, compile: bool = False,
    ) -> None:
        if level not in ("internal", "output"):
            raise ValueError(f"level must be 'internal' or 'output', got {level!r}")
        self.ema = ema
        self.depth = int(depth)
        self.level = level
        self.options = options or TargetOptions()
        if compile:  # only the blocks the targets need (all of them for level "output")
            compile_blocks(self.model.layers if level == "output" else self.model.layers[: self.depth])

    @property
    def model(self) -> nn.Module:
        return self.ema.module

    @property
    def teacher_dim(self) -> int:  # type: ignore[override]
        # LlamaGen name of the token embedding; its width is the residual stream's.
        return int(self.model.tok_embeddings.weight.shape[1])

    @torch.no_grad()
    def __call__(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # eval() every call: cheap, and it guards against someone having flipped the EMA to train mode.
        self.model.eval()
        with teacher_autocast(tokens.device, self.options.precision):
            if self.level == "internal":
                feature = self.model.forward_features(tokens, labels, self.depth)
            else:
                feature = self.model(tokens, labels).final_hidden
        return normalise_targets(feature.detach(), self.options.norm, self.options.norm_alpha, first=1)

    def targets(self, batch: TeacherBatch) -> torch.Tensor:
        return self(batch.codes, batch.labels)
