"""Autocast: bf16 where the hardware runs it fast (CUDA, CPUs with AMX/AVX512-BF16), fp32 otherwise."""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        # AMX-BF16 / AVX512-BF16 make CPU bf16 matmuls fast; without them bf16 autocast is slower than fp32.
        checks = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
        return any(check() for check in checks if check is not None)
    return False


def resolve_precision(requested: str, device: torch.device) -> str:
    """`bf16` falls back to `fp32` where bf16 is not supported (said once by the caller)."""
    if requested == "bf16" and not bf16_supported(device):
        return "fp32"
    return requested


def autocast(precision: str, device: torch.device) -> ContextManager:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
