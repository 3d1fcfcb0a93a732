"""How a teacher's output becomes the foresight target: the precision it is computed in and the resize of
the encoder input. Every field is part of the teacher-feature cache's identity (docs/method.md, Foresight)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch

from mirai_cli.errors import MiraiError
from mirai_cli.runtime import autocast, resolve_precision

TEACHER_PRECISIONS = ("fp32", "bf16")
RESIZES = ("bicubic", "bicubic-antialias")


@dataclass(frozen=True)
class TargetOptions:
    """precision: "fp32" (the paper's code) or "bf16" (opt-in, bf16 autocast where the hardware has it).
    resize: "bicubic" (the paper's code: normalise, then plain bicubic F.interpolate) or "bicubic-antialias"
    (antialiased when shrinking, clamped to [0, 1], then normalised, as a PIL resize of the uint8 crop)."""

    precision: str = "fp32"
    resize: str = "bicubic"

    def __post_init__(self) -> None:
        if self.precision not in TEACHER_PRECISIONS:
            raise MiraiError(f"foresight.teacher_precision = {self.precision!r}: use one of {', '.join(TEACHER_PRECISIONS)}")
        if self.resize not in RESIZES:
            raise MiraiError(f"foresight.encoder_resize = {self.resize!r}: use one of {', '.join(RESIZES)}")

    def describe(self) -> dict:
        return asdict(self)

    def tag(self) -> str:
        """Folder-name suffix of the non-default choices ("" for the defaults)."""
        parts = [] if self.precision == "fp32" else [self.precision]
        parts += [] if self.resize == "bicubic" else ["antialias"]
        return "".join(f"-{p}" for p in parts)


@contextlib.contextmanager
def teacher_autocast(device: torch.device, precision: str) -> Iterator[None]:
    """fp32 turns autocast off, even inside the training step's bf16 region; bf16 autocasts where bf16 is fast
    on `device` (fp32 elsewhere)."""
    with autocast(device, resolve_precision(precision, device)):
        yield
