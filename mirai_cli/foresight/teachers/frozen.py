"""Mirai-I teachers behind the Teacher interface: a frozen encoder run on the exact crops every step, or its
features read from the cache next to the token store (docs/method.md, Foresight)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np
import torch

from mirai_cli.foresight.teachers.base import Teacher, TeacherBatch
from mirai_cli.foresight.teachers.encoders import FrozenEncoder
from mirai_cli.foresight.teachers.pixels import uint8_to_unit
from mirai_cli.foresight.teachers.store_pixels import StorePixels

if TYPE_CHECKING:
    from mirai_cli.foresight.feature_cache import TeacherFeatureCache


class OnlineEncoderTeacher(Teacher):
    """Runs the frozen encoder on the crops behind the batch's codes. read_ahead decodes and crops the images
    on the host (uint8 [B, S, S, 3]); targets resizes, normalises and encodes them on the device."""

    teacher_space = "cells"

    def __init__(self, encoder: FrozenEncoder, pixels: StorePixels) -> None:
        self.encoder = encoder
        self.pixels = pixels
        self.teacher_dim = encoder.teacher_dim

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def read_ahead(self, images: np.ndarray, crops: np.ndarray) -> Optional[torch.Tensor]:
        return self.pixels.get_uint8(images, crops)

    def targets(self, batch: TeacherBatch) -> torch.Tensor:
        crops = batch.teacher if batch.teacher is not None else self.read_ahead(batch.images, batch.crops)
        assert crops is not None
        return self.encoder(uint8_to_unit(crops.to(self.device)))


class CachedEncoderTeacher(Teacher):
    """Reads the encoder's features computed once for every (entry, crop) of the store: read_ahead is the
    (float16, host) read, targets moves it to the device in fp32."""

    teacher_space = "cells"

    def __init__(self, cache: TeacherFeatureCache, device: torch.device) -> None:
        self.cache = cache
        self.device = device
        self.teacher_dim = cache.teacher_dim

    def read_ahead(self, images: np.ndarray, crops: np.ndarray) -> Optional[torch.Tensor]:
        return self.cache.get(images, crops)

    def targets(self, batch: TeacherBatch) -> torch.Tensor:
        feats = batch.teacher if batch.teacher is not None else self.read_ahead(batch.images, batch.crops)
        assert feats is not None
        return feats.to(self.device, torch.float32)

    def nonfinite_problem(self) -> Optional[str]:
        return self.cache.nonfinite_problem()
