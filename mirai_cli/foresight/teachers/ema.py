"""Mirai-E teacher: the EMA of the generator itself (docs/method.md, Foresight).

Ordering in the training step (the trainer's job, stated here because the method depends on it):
    1. teacher features = EMATeacher(tokens, labels)   <- EMA as of the previous step
    2. student forward/backward, optimizer.step()
    3. ema.update(model)
so the target at step t comes from the EMA after step t-1, never from weights that saw this batch.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from mirai_cli.foresight.teachers.targets import (
    SPATIAL_ALPHA,
    TEACHER_PRECISIONS,
    normalise_targets,
    teacher_autocast,
)


class EMATeacher:
    """Runs the EMA GPT in eval mode (no dropout, no label drop) without gradients, only up to block
    `depth`, on the same tokens and the true labels. Output: [B, N, D] in sequence positions (cell c at
    position c + 1), i.e. `teacher_space="sequence"` for `aligned_pairs`.

    level="output" (the injection ablation) targets the EMA's final normed hidden state instead; that needs
    the full forward. precision: "fp32" (the paper's code: the fp32 EMA outside autocast) or "bf16".
    norm / norm_alpha: `normalise_targets`; "spatial" statistics come from the cell positions 1.. (the class
    position 0 is normalised with them).
    """

    teacher_space = "sequence"

    def __init__(
        self, ema_model: nn.Module, depth: int, level: Literal["internal", "output"] = "internal",
        precision: str = "fp32", norm: str = "none", norm_alpha: float = SPATIAL_ALPHA,
    ) -> None:
        if level not in ("internal", "output"):
            raise ValueError(f"level must be 'internal' or 'output', got {level!r}")
        if precision not in TEACHER_PRECISIONS:
            raise ValueError(f"precision must be one of {TEACHER_PRECISIONS}, got {precision!r}")
        self.model = ema_model
        self.depth = int(depth)
        self.level = level
        self.precision = precision
        self.norm, self.norm_alpha = norm, norm_alpha

    @property
    def teacher_dim(self) -> int:
        # LlamaGen name of the token embedding; its width is the residual stream's.
        return int(self.model.tok_embeddings.weight.shape[1])

    @torch.no_grad()
    def __call__(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # eval() every call: cheap, and it guards against someone having flipped the EMA to train mode.
        self.model.eval()
        with teacher_autocast(tokens.device, self.precision):
            if self.level == "internal":
                feature = self.model.forward_features(tokens, labels, self.depth)
            else:
                feature = self.model(tokens, labels).final_hidden
        return normalise_targets(feature.detach(), self.norm, self.norm_alpha, first=1)
