"""Device and precision choice shared by every command (tokenizer work, training, benchmarks)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch

from mirai_cli.errors import MiraiError

PRECISIONS = ("bf16", "fp32")


def visible_gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def choose_device(asked: str | None, *, local_rank: int = 0, world_size: int = 1, gpus: int = 0) -> torch.device:
    """The device a process uses, from plain inputs: `asked` is "auto"/None (a GPU when one is visible, else the
    CPU), "cpu", "cuda" (this process's GPU: local rank modulo the `gpus` visible) or "cuda:N" (GPU N, kept as
    given; one process only: under torchrun every process would take the same GPU)."""
    if asked in (None, "auto"):
        return torch.device("cuda", local_rank % gpus) if gpus else torch.device("cpu")
    try:
        dev = torch.device(asked)
    except (RuntimeError, ValueError) as e:
        raise MiraiError(f"unknown device '{asked}': use auto, cpu, cuda or cuda:N") from e
    if dev.type != "cuda":
        return dev
    if gpus == 0:
        raise MiraiError(f"device '{asked}' asked for, but no CUDA GPU is visible: use --device cpu")
    if dev.index is None:
        return torch.device("cuda", local_rank % gpus)
    if world_size > 1:
        raise MiraiError(f"device '{asked}' under torchrun: each process takes the GPU of its LOCAL_RANK; give "
                         "--device cuda (choose the GPUs with CUDA_VISIBLE_DEVICES)")
    if dev.index >= gpus:
        raise MiraiError(f"device '{asked}' asked for, but only {gpus} GPU(s) are visible: use cuda:0 .. "
                         f"cuda:{gpus - 1}")
    return dev


def resolve_device(device: str = "auto") -> torch.device:
    """The device of a one-process job (`--device`): see choose_device."""
    return choose_device(device, gpus=visible_gpus())


def cuda_bf16_is_native(capability: tuple[int, int]) -> bool:
    """bf16 tensor cores from compute capability 8.0 (Ampere) on; older GPUs (V100, T4) emulate it, slowly,
    though torch.cuda.is_bf16_supported() counts the emulation as support."""
    return tuple(capability) >= (8, 0)


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 autocast pays off on GPUs with native bf16 (asked of `device` itself, not the current GPU) and on
    CPUs with AMX or AVX512-BF16; on plain AVX2 CPUs torch emulates it and it is an order of magnitude slower
    than fp32."""
    if device.type == "cuda":
        return cuda_bf16_is_native(torch.cuda.get_device_capability(device))
    if device.type == "cpu":
        cap = torch.backends.cpu.get_cpu_capability().upper()
        return "AMX" in cap or "AVX512_BF16" in cap or _cpu_flag("amx_bf16") or _cpu_flag("avx512_bf16")
    return False


@functools.cache  # asked per teacher call (teacher_autocast): read /proc/cpuinfo once
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


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 set as `enabled` inside (both flags of set_tf32), each flag restored as it was after."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    set_tf32(enabled)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def set_tf32(enabled: bool) -> None:
    """CUDA fp32 matmuls/convolutions in TF32 (LlamaGen's train_c2i sets both): without it the fp32 EMA teacher
    of Mirai-E runs at a fraction of a GPU's bf16 rate. No effect on CPU computation."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
