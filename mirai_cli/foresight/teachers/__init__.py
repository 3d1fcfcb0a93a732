"""Foresight teachers behind one interface (base.Teacher): the EMA of the generator (Mirai-E) and frozen
image encoders run online or read from their cache (Mirai-I)."""

from mirai_cli.foresight.teachers.base import TargetBatch, Teacher
from mirai_cli.foresight.teachers.ema import EMATeacher
from mirai_cli.foresight.teachers.encoders import (
    ENCODER_SPECS,
    EncoderSpec,
    FrozenEncoder,
    build_encoder,
    encoder_input_size,
    encoder_names,
    encoder_teacher_dim,
)
from mirai_cli.foresight.teachers.frozen import CachedEncoderTeacher, OnlineEncoderTeacher

__all__ = [
    "CachedEncoderTeacher",
    "OnlineEncoderTeacher",
    "ENCODER_SPECS",
    "EMATeacher",
    "EncoderSpec",
    "FrozenEncoder",
    "TargetBatch",
    "Teacher",
    "build_encoder",
    "encoder_input_size",
    "encoder_names",
    "encoder_teacher_dim",
]
