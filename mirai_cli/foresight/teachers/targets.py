"""How a teacher's output becomes the foresight target: the precision it is computed in, the resize of the
encoder input, the encoder layer it is read from and its normalisation. Every field is part of the
teacher-feature cache's identity (docs/method.md, Foresight)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from mirai_cli.config.schema import section_defaults
from mirai_cli.errors import MiraiError
from mirai_cli.runtime.device import autocast, resolve_precision

TEACHER_PRECISIONS = ("fp32", "bf16")
RESIZES = ("bicubic", "bicubic-antialias")
TARGET_NORMS = ("none", "layer", "spatial")
FORESIGHT = section_defaults("foresight")  # the preset's [foresight] defaults: the one place they are written
SPATIAL_ALPHA = FORESIGHT["target_norm_alpha"]  # iREPA's 0.6 for latent (SiT) training (0.8 for pixel-space JiT)
NORM_EPS = 1e-6  # iREPA's, added to the std


@dataclass(frozen=True)
class TargetOptions:
    """precision: "fp32" (the paper's code) or "bf16" (opt-in, bf16 autocast where the hardware has it).
    resize: "bicubic" (the paper's code: normalise, then plain bicubic F.interpolate) or "bicubic-antialias"
    (antialiased when shrinking, clamped to [0, 1], then normalised, as a PIL resize of the uint8 crop).
    layer: the encoder stage/block giving the target (None: the encoder's default, see encoders.py).
    norm / norm_alpha: `normalise_targets`."""

    precision: str = FORESIGHT["teacher_precision"]
    resize: str = FORESIGHT["encoder_resize"]
    layer: int | None = FORESIGHT["encoder_layer"]
    norm: str = FORESIGHT["target_norm"]
    norm_alpha: float = SPATIAL_ALPHA

    def __post_init__(self) -> None:
        if self.precision not in TEACHER_PRECISIONS:
            raise MiraiError(f"foresight.teacher_precision = {self.precision!r}: use one of {', '.join(TEACHER_PRECISIONS)}")
        if self.resize not in RESIZES:
            raise MiraiError(f"foresight.encoder_resize = {self.resize!r}: use one of {', '.join(RESIZES)}")
        if self.norm not in TARGET_NORMS:
            raise MiraiError(f"foresight.target_norm = {self.norm!r}: use one of {', '.join(TARGET_NORMS)}")

    def describe(self) -> dict:
        return asdict(self)

    def tag(self) -> str:
        """Folder-name suffix of the non-default choices ("" for the defaults)."""
        parts = [] if self.layer is None else [f"L{self.layer}"]
        parts += {"none": [], "layer": ["layernorm"], "spatial": [f"spatial{self.norm_alpha:g}"]}[self.norm]
        parts += [] if self.precision == "fp32" else [self.precision]
        parts += [] if self.resize == "bicubic" else ["antialias"]
        return "".join(f"-{p}" for p in parts)


def normalise_targets(x: torch.Tensor, norm: str, alpha: float = SPATIAL_ALPHA, first: int = 0) -> torch.Tensor:
    """Targets [B, T, D] -> normalised, in fp32.
    "layer": each position over its D channels (LayerNorm without affine, eps 1e-6).
    "spatial" (iREPA, arXiv 2512.10794): each image's channel over the positions `first:` (the patch/cell
    positions; `first` = 1 skips a class position, which is normalised with the cells' statistics):
    (x - alpha * mean) / (std + 1e-6), std with Bessel's correction, as iREPA's code."""
    x = x.float()
    if norm == "none":
        return x
    if norm == "layer":
        return F.layer_norm(x, x.shape[-1:], eps=NORM_EPS)
    if norm == "spatial":
        cells = x[:, first:]
        return (x - alpha * cells.mean(dim=1, keepdim=True)) / (cells.std(dim=1, keepdim=True) + NORM_EPS)
    raise ValueError(f"unknown target norm {norm!r}")


@contextlib.contextmanager
def teacher_autocast(device: torch.device, precision: str) -> Iterator[None]:
    """fp32 turns autocast off, even inside the training step's bf16 region; bf16 autocasts where bf16 is fast
    on `device` (fp32 elsewhere)."""
    with autocast(device, resolve_precision(precision, device)):
        yield
