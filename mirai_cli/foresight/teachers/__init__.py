"""Foresight teachers: the EMA of the generator (Mirai-E) and frozen image encoders (Mirai-I)."""

from mirai_cli.foresight.teachers.ema import EMATeacher
from mirai_cli.foresight.teachers.encoders import (
    ENCODERS,
    EncoderSpec,
    FrozenEncoder,
    build_encoder,
    encoder_input_size,
    encoder_names,
    encoder_teacher_dim,
)

__all__ = [
    "ENCODERS",
    "EMATeacher",
    "EncoderSpec",
    "FrozenEncoder",
    "build_encoder",
    "encoder_input_size",
    "encoder_names",
    "encoder_teacher_dim",
]
