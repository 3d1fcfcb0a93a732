"""Device and precision choice shared by every command (tokenizer work, training, benchmarks)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from mirai_cli.errors import MiraiError

PRECISIONS = ("bf16", "fp32")


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise MiraiError(f"unknown device '{device}': use auto, cpu, cuda or cuda:N") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MiraiError(f"device '{device}' asked for, but no CUDA GPU is visible: use --device cpu")
    return dev


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 autocast pays off on GPUs with bf16 and on CPUs with AMX or AVX512-BF16; on plain AVX2 CPUs
    torch emulates it and it is an order of magnitude slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cap = torch.backends.cpu.get_cpu_capability().upper()
        return "AMX" in cap or "AVX512_BF16" in cap or _cpu_flag("amx_bf16") or _cpu_flag("avx512_bf16")
    return False


def _cpu_flag(flag: str) -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(flag in line.split() for line in f if line.startswith("flags"))
    except OSError:
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """'bf16' (the default) means bf16 autocast where the hardware supports it, fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise MiraiError(f"unknown precision '{precision}': use one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and not bf16_is_fast(device):
        return "fp32"
    return precision


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        yield


def set_tf32(enabled: bool) -> None:
    """CUDA fp32 matmuls/convolutions in TF32 (LlamaGen's train_c2i sets both): without it the fp32 EMA teacher
    of Mirai-E runs at a fraction of a GPU's bf16 rate. No effect on CPU computation."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
