"""From logits to a token: guidance scale per step, classifier-free guidance, temperature, top-k, top-p, draw."""

from __future__ import annotations

import math

import torch

CFG_SCHEDULES = ("constant", "linear", "interval")


def guidance_scales(scale: float, schedule: str, num_tokens: int, interval: float = 1.0) -> list[float]:
    """The guidance scale used for each of the num_tokens image tokens (token i = cell i).

    constant: `scale` everywhere; linear: a ramp from 1 at the first token to `scale` at the last;
    interval: `scale` for the first ceil(interval * N) tokens, then 1 (guidance stops)."""
    if schedule == "constant":
        return [float(scale)] * num_tokens
    if schedule == "linear":
        if num_tokens == 1:
            return [float(scale)]
        return [1.0 + (scale - 1.0) * i / (num_tokens - 1) for i in range(num_tokens)]
    if schedule == "interval":
        if not 0.0 <= interval <= 1.0:
            raise ValueError(f"cfg_interval must be in [0, 1], got {interval}")
        guided = math.ceil(interval * num_tokens - 1e-9)
        return [float(scale) if i < guided else 1.0 for i in range(num_tokens)]
    raise ValueError(f"unknown cfg schedule {schedule!r}; choose one of {CFG_SCHEDULES}")


def combine_cfg(logits: torch.Tensor, scale: float) -> torch.Tensor:
    """logits [2B, V] = conditional half then null-class half -> uncond + scale * (cond - uncond) [B, V]."""
    cond, uncond = logits.chunk(2, dim=0)
    if scale == 1.0:
        return cond
    return uncond + scale * (cond - uncond)


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Temperature, then top-k (0 = off), then top-p (1 = off). Removed entries become -inf. logits [B, V]."""
    logits = logits.float()
    if temperature != 1.0:  # x / 1 is x: skip the launch
        logits = logits / max(temperature, 1e-5)
    if top_k > 0:
        k = min(top_k, logits.shape[-1])
        kth = torch.topk(logits, k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the tokens ranked above it already hold more than top_p of the mass; the most
        # likely token always survives.
        drop_sorted = (probs.cumsum(dim=-1) - probs) > top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def draw(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row from softmax(logits) [B, V] -> [B] (multinomial, reproducible with a generator)."""
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]
