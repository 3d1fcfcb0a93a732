"""The foresight loss: L_k = mean over aligned pairs of -cos(rho_k(h_student), target_k); total = sum lambda_k L_k."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

TOTAL_KEY = "foresight"


def head_key(k: int) -> str:
    """Log name of head k's (unweighted) loss."""
    return f"foresight_h{k}"


def negative_cosine(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of -cos over every pair (all leading dims), computed in fp32 whatever the autocast dtype.
    A head without pairs (tiny grid, large offset) gives 0 while staying in the graph."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ")
    if prediction.numel() == 0:
        return prediction.float().sum() * 0.0
    cos = F.cosine_similarity(prediction.float(), target.float(), dim=-1, eps=1e-8)
    return -cos.mean()


def foresight_losses(
    predictions: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], weights: Sequence[float]
) -> dict[str, torch.Tensor]:
    """Per-head losses and their weighted sum.

    predictions[k], targets[k]: [..., P_k, D_teacher] for head k. weights: lambda_k at this step.
    Returns {"foresight_h0": L_0, ..., "foresight": sum_k lambda_k L_k} (all scalar tensors; only the
    total is meant for backward, the rest for logging).
    """
    if not (len(predictions) == len(targets) == len(weights)):
        raise ValueError(f"{len(predictions)} predictions, {len(targets)} targets, {len(weights)} weights")
    out: dict[str, torch.Tensor] = {}
    total: torch.Tensor | None = None
    for k, (pred, tgt, lam) in enumerate(zip(predictions, targets, weights)):
        loss = negative_cosine(pred, tgt)
        out[head_key(k)] = loss
        term = loss * float(lam)
        total = term if total is None else total + term
    out[TOTAL_KEY] = total if total is not None else torch.zeros(())
    return out
