"""Mirai-E teacher: the EMA of the generator itself (docs/method.md, "Foresight").

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


class EMATeacher:
    """Runs the EMA GPT in eval mode (no dropout, no label drop) without gradients, only up to block
    `depth`, on the same tokens and the true labels. Output: [B, N, D] in sequence positions (cell c at
    position c + 1), i.e. `teacher_space="sequence"` for `aligned_pairs`.

    level="output" (the injection ablation) targets the EMA's final normed hidden state instead; that needs
    the full forward.
    """

    teacher_space = "sequence"

    def __init__(self, ema_model: nn.Module, depth: int, level: Literal["internal", "output"] = "internal") -> None:
        if level not in ("internal", "output"):
            raise ValueError(f"level must be 'internal' or 'output', got {level!r}")
        self.model = ema_model
        self.depth = int(depth)
        self.level = level

    @property
    def teacher_dim(self) -> int:
        # LlamaGen name of the token embedding; its width is the residual stream's.
        return int(self.model.tok_embeddings.weight.shape[1])

    @torch.no_grad()
    def __call__(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # eval() every call: cheap, and it guards against someone having flipped the EMA to train mode.
        self.model.eval()
        if self.level == "internal":
            feature = self.model.forward_features(tokens, labels, self.depth)
        else:
            feature = self.model(tokens, labels).final_hidden
        return feature.detach()
