"""What the "auto" value of a setting means on a device: each rule written once, taking the device type ("cuda",
"cpu", ...) as a plain string, so a CPU test can check the GPU choice.

    train.compile, sample.compile   on on CUDA (LlamaGen trains and samples compiled), off elsewhere: on a CPU
                                    the compile time (minutes) is rarely won back
    sample.batch_size               128 on CUDA (a GPU needs wide batches to be busy), 32 elsewhere
    sample.weights_dtype            bf16 when the sampling runs in bf16 (autocast on CUDA), else fp32: the weights
                                    are kept in the dtype they compute in instead of being re-cast every token
"""

from __future__ import annotations

from typing import Union

AUTO = "auto"
COMPILE_DEVICES = ("cuda",)
SAMPLE_BATCH = {"cuda": 128}
SAMPLE_BATCH_ELSEWHERE = 32


def resolve_compile(setting: Union[bool, str], device_type: str) -> bool:
    """train.compile / sample.compile: true, false, or "auto" (on for the device types in COMPILE_DEVICES)."""
    if setting == AUTO:
        return device_type in COMPILE_DEVICES
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"compile must be true, false or 'auto', not {setting!r}")


def resolve_sample_batch(setting: Union[int, str], device_type: str) -> int:
    """sample.batch_size: a number of images, or "auto" (SAMPLE_BATCH for the device type)."""
    if setting == AUTO:
        return SAMPLE_BATCH.get(device_type, SAMPLE_BATCH_ELSEWHERE)
    if isinstance(setting, int) and not isinstance(setting, bool) and setting >= 1:
        return setting
    raise ValueError(f"sample batch size must be a number >= 1 or 'auto', not {setting!r}")


def resolve_weights_dtype(setting: str, compute_precision: str) -> str:
    """sample.weights_dtype: "fp32", "bf16", or "auto" (the precision the decoding computes in: "bf16" under bf16
    autocast, "fp32" otherwise, so fp32 sampling keeps fp32 weights and its exact tokens)."""
    if setting == AUTO:
        return "bf16" if compute_precision == "bf16" else "fp32"
    if setting in ("fp32", "bf16"):
        return setting
    raise ValueError(f"weights dtype must be 'fp32', 'bf16' or 'auto', not {setting!r}")
