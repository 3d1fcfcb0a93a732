"""The preset's foresight teacher in one call, so the engine knows only the Teacher interface (base.py): the EMA
of the generator (Mirai-E), or a frozen encoder (Mirai-I) read from the feature cache next to the token store
or run online on the exact crops."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn

from mirai_cli.config import MiraiConfig
from mirai_cli.config.auto import resolve_compile
from mirai_cli.data.store import TokenStore
from mirai_cli.errors import MiraiError
from mirai_cli.foresight.feature_cache import build_feature_cache, open_feature_cache
from mirai_cli.foresight.teachers.base import Teacher
from mirai_cli.foresight.teachers.ema import EMATeacher
from mirai_cli.foresight.teachers.encoders import FrozenEncoder, build_encoder, cache_name, encoder_input_size
from mirai_cli.foresight.teachers.frozen import CachedEncoderTeacher, OnlineEncoderTeacher
from mirai_cli.foresight.teachers.store_pixels import StorePixels
from mirai_cli.foresight.teachers.targets import TargetOptions
from mirai_cli.runtime.distributed import DistEnv
from mirai_cli.runtime.progress import make_progress

MakeEMA = Callable[[nn.Module, float], Any]  # (model, decay) -> an EMA with .module, .decay (engine/ema.py)


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


def ensure_feature_cache(config: MiraiConfig, store: TokenStore, device: torch.device, progress: bool = True,
                         env: Optional[DistEnv] = None) -> Path:
    """Build (or finish) the Mirai-I teacher-feature cache next to the store; a finished one is reused (checked
    against this encoder and store, without recomputing). Under torchrun every rank calls it: the shards are
    split over the ranks, images decoded in data.num_workers processes."""
    encoder = build_frozen_encoder(config, store, device)
    with make_progress(progress and (env is None or env.is_main)) as bar:
        tasks: list = []

        def report(done: int, total: int) -> None:
            # The task appears with the first batch: a finished cache returns before any and shows nothing.
            if not tasks:
                tasks.append(bar.add_task(f"teacher features ({config.foresight.encoder})", total=total, status=""))
            bar.update(tasks[0], completed=done)

        return build_feature_cache(store, encoder, batch_size=64, progress=report, env=env,
                                   num_workers=config.data.num_workers)


def build_teacher(
    config: MiraiConfig, store: TokenStore, gpt: nn.Module, device: torch.device, *, make_ema: MakeEMA,
    sample_ema: Any = None, env: Optional[DistEnv] = None, progress: bool = True,
) -> Optional[Teacher]:
    """The preset's teacher (None for foresight.source = "none"). Mirai-E reads `sample_ema` when its decay is
    foresight.ema_decay, else an EMA of `gpt` of its own made by `make_ema`; either way the caller updates and
    saves it (it is `teacher.ema`). Mirai-I with foresight.cache_teacher: the ranks of `env` build (or check)
    the cache together, then read it."""
    fc = config.foresight
    if fc.source == "none":
        return None
    if fc.source == "ema":
        shared = sample_ema is not None and sample_ema.decay == fc.ema_decay
        return EMATeacher(sample_ema if shared else make_ema(gpt, fc.ema_decay), fc.depth or 1, fc.level,
                          target_options(config), compile=resolve_compile(config.train.compile, device.type))
    if fc.source == "encoder":
        if not fc.cache_teacher:
            return OnlineEncoderTeacher(build_frozen_encoder(config, store, device), StorePixels(store))
        ensure_feature_cache(config, store, device, progress, env)
        return CachedEncoderTeacher(open_feature_cache(store, teacher_cache_name(config)), device)
    raise MiraiError(f"foresight.source = {fc.source!r} has no teacher")
