"""Validation NLL: the mean next-token negative log-likelihood (nats per token) of a GPT on held-out images.

A convergence signal with far less noise than a sample-based metric: every held-out token is scored exactly,
with the class label given (no label drop, no dropout) and one crop per image (the store's first)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mirai_cli.data.store import TokenStore
from mirai_cli.errors import MiraiError
from mirai_cli.runtime.device import autocast


@torch.no_grad()
def validation_nll(model: torch.nn.Module, store: TokenStore, *, precision: str = "fp32", batch_size: int = 256,
                   device: torch.device | str | None = None, crop: int = 0) -> float:
    """Mean NLL over every token of every image in `store` (model in eval mode; its mode is restored), on
    `device` (default: the model's) under `precision` autocast (give the run's: "bf16" or "fp32")."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if len(store) == 0:
        raise MiraiError(f"validation store {store.path} holds no images")
    if not 0 <= crop < store.num_crops:
        raise MiraiError(f"validation crop {crop} is not in the store's {store.num_crops} crops")
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, len(store), batch_size):
            idx = np.arange(start, min(start + batch_size, len(store)))
            codes = store.codes.get(idx, np.full(len(idx), crop))
            tokens = torch.from_numpy(codes.astype(np.int64)).to(device)
            labels = torch.from_numpy(store.labels[idx].astype(np.int64)).to(device)
            with autocast(device, precision):
                logits = model(tokens, labels, class_drop=False).logits
            total += F.cross_entropy(logits.float().flatten(0, 1), tokens.flatten(), reduction="sum").item()
            count += tokens.numel()
    finally:
        model.train(was_training)
    return total / count
