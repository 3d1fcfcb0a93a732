"""Where a training step's foresight targets come from: the EMA teacher (Mirai-E), or a frozen encoder
(Mirai-I) read from the feature cache next to the token store or run online on the exact crops."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from mirai_cli.config import MiraiConfig
from mirai_cli.data.store import TokenStore
from mirai_cli.errors import MiraiError
from mirai_cli.foresight.feature_cache import StorePixels, build_feature_cache, open_feature_cache
from mirai_cli.foresight.teachers import EMATeacher, FrozenEncoder, build_encoder
from mirai_cli.foresight.teachers.encoders import cache_name, encoder_input_size
from mirai_cli.foresight.teachers.targets import TargetOptions
from mirai_cli.progress import make_progress


class TeacherSource:
    teacher_space: str = "sequence"
    teacher_dim: int = 0

    def attach_ema(self, ema_model: nn.Module) -> None:  # only the EMA source needs it
        pass

    def features(self, codes: torch.Tensor, labels: torch.Tensor, images: np.ndarray, crops: np.ndarray) -> torch.Tensor:
        raise NotImplementedError


class EMASource(TeacherSource):
    teacher_space = "sequence"

    def __init__(self, dim: int, depth: int, level: str, options: TargetOptions):
        self.teacher_dim = dim
        self.depth = depth
        self.level = level
        self.options = options
        self.teacher: Optional[EMATeacher] = None

    def attach_ema(self, ema_model: nn.Module) -> None:
        o = self.options
        self.teacher = EMATeacher(ema_model, self.depth, self.level, o.precision, o.norm, o.norm_alpha)  # type: ignore[arg-type]

    def features(self, codes, labels, images, crops):
        assert self.teacher is not None, "attach_ema() first"
        # The EMA as of the previous step: the trainer updates it only after the optimizer step.
        return self.teacher(codes, labels)


class OnlineEncoderSource(TeacherSource):
    """Runs the frozen encoder on the regenerated crop pixels every step (no cache)."""

    teacher_space = "cells"

    def __init__(self, encoder: FrozenEncoder, store: TokenStore, device: torch.device):
        self.encoder = encoder
        self.pixels = StorePixels(store)  # opens the recorded source once
        self.device = device
        self.teacher_dim = encoder.teacher_dim

    def features(self, codes, labels, images, crops):
        return self.encoder(self.pixels.get(images, crops).to(self.device))


class CachedEncoderSource(TeacherSource):
    """Reads the features computed once for every (image, crop) of the store."""

    teacher_space = "cells"

    def __init__(self, cache, device: torch.device):
        self.cache = cache
        self.device = device
        self.teacher_dim = cache.teacher_dim

    def features(self, codes, labels, images, crops):
        return self.cache.get(images, crops).to(self.device, torch.float32)


def target_options(config: MiraiConfig) -> TargetOptions:
    fc = config.foresight
    return TargetOptions(precision=fc.teacher_precision, resize=fc.encoder_resize, layer=fc.encoder_layer,
                         norm=fc.target_norm, norm_alpha=fc.target_norm_alpha)


def build_frozen_encoder(config: MiraiConfig, store: TokenStore, device: torch.device) -> FrozenEncoder:
    fc = config.foresight
    tokenizer = None
    if fc.encoder == "tokenizer":
        from mirai_cli.tokenizer import load_tokenizer

        path = store.manifest.get("tokenizer_path") or config.tokenizer.checkpoint
        if not path or not Path(path).exists():
            raise MiraiError(f"foresight.encoder = 'tokenizer' needs the tokenizer checkpoint ({path}); "
                             "set tokenizer.checkpoint")
        tokenizer, _ = load_tokenizer(path, device=device)
    return build_encoder(
        fc.encoder, (config.grid, config.grid), weights=fc.encoder_weights, resolution=fc.encoder_resolution,
        tokenizer=tokenizer, device=device, options=target_options(config),
    )


def teacher_cache_name(config: MiraiConfig) -> str:
    """The cache folder this preset's Mirai-I targets live in (known without loading the encoder)."""
    fc = config.foresight
    size = encoder_input_size(fc.encoder, (config.grid, config.grid), fc.encoder_resolution, config.tokenizer.downsample,
                              fc.encoder_layer)
    return cache_name(fc.encoder, size, target_options(config))


def ensure_feature_cache(config: MiraiConfig, store: TokenStore, device: torch.device, progress: bool = True) -> Path:
    """Build (or finish) the Mirai-I teacher-feature cache next to the store; a finished one is reused (checked
    against this encoder and store, without recomputing)."""
    encoder = build_frozen_encoder(config, store, device)
    with make_progress(progress) as bar:
        tasks: list = []

        def report(done: int, total: int) -> None:
            # The task appears with the first batch: a finished cache returns before any and shows nothing.
            if not tasks:
                tasks.append(bar.add_task(f"teacher features ({config.foresight.encoder})", total=total, status=""))
            bar.update(tasks[0], completed=done)

        return build_feature_cache(store, encoder, batch_size=64, progress=report)


def build_teacher_source(
    config: MiraiConfig, store: TokenStore, device: torch.device, is_main: bool = True,
    wait: Callable[[], None] = lambda: None, progress: bool = True,
) -> TeacherSource:
    fc = config.foresight
    if fc.source == "ema":
        return EMASource(dim=config.model.dim or 0, depth=fc.depth or 1, level=fc.level, options=target_options(config))
    if fc.source == "encoder":
        if not fc.cache_teacher:
            return OnlineEncoderSource(build_frozen_encoder(config, store, device), store, device)
        if is_main:  # one process computes (or checks) the cache; the others wait for it
            ensure_feature_cache(config, store, device, progress)
        wait()
        return CachedEncoderSource(open_feature_cache(store, teacher_cache_name(config)), device)
    raise MiraiError(f"foresight.source = {fc.source!r} has no teacher")

