"""The next-token loss: mean cross-entropy of the logits against the codes, with a hand-written backward.

`F.cross_entropy` saves the log-softmax [tokens, vocab], then its backward makes a zero-filled gradient of it
(nll_loss) and runs log_softmax_backward over both, two more full passes and a full allocation: at 16,384
codes, passes over [batch x 256, 16384] fp32 are a large part of a small model's step. Here the backward turns
the saved log-softmax into softmax - one-hot in place (exp, scatter -1, scale): one pass, no new tensor. Same
values and gradients to fp32 rounding (tested against F.cross_entropy). The saved tensor is consumed, so the
graph can be back-propagated once (no retain_graph), as a training step does."""

from __future__ import annotations

from typing import Any

import torch


class _NextTokenLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(logits, dim=-1)
        ctx.save_for_backward(logp, targets)
        return -logp.gather(1, targets[:, None]).mean()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        if getattr(ctx, "consumed", False):
            raise RuntimeError("next_token_loss can be back-propagated once (its saved log-softmax is reused)")
        ctx.consumed = True
        logp, targets = ctx.saved_tensors
        dlogits = logp.exp_()  # softmax, in the saved tensor's memory: nothing else reads it
        minus_one = torch.full((targets.shape[0], 1), -1.0, dtype=dlogits.dtype, device=dlogits.device)
        dlogits.scatter_add_(1, targets[:, None], minus_one)
        return dlogits.mul_(grad / targets.shape[0]), None


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy: logits [..., V] (computed in fp32), integer targets [...]; a 0-dim fp32 tensor."""
    return _NextTokenLoss.apply(logits.float().flatten(0, -2), targets.flatten())
