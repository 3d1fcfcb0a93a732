"""The preset's `data` and `tokenizer` sections -> a fit, an encode, or "make sure both exist" (used by
`mirai tokenize` and by `mirai ablate`, which starts from nothing)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Callable, Optional

from mirai_cli.config import MiraiConfig, resolved_toml
from mirai_cli.config.toml_writer import config_to_dict
from mirai_cli.data.holdout import training_and_validation_splits
from mirai_cli.errors import MiraiError
from mirai_cli.files.locks import check_not_an_input
from mirai_cli.tokenizer.config import VQConfig
from mirai_cli.tokenizer.encode import encode_store
from mirai_cli.tokenizer.fit import FitConfig, FitResult, fit_tokenizer

Log = Callable[[str], None]


def vq_config_from(config: MiraiConfig) -> VQConfig:
    """The preset's tokenizer: every [tokenizer] field VQConfig shares with the schema, and the size as its name."""
    t = config.tokenizer
    shared = {f.name: getattr(t, f.name) for f in fields(VQConfig) if f.name in type(t).model_fields}
    return VQConfig(**shared, name=t.size if t.size != "custom" else "custom")


def stated_vq_config(config: MiraiConfig) -> Optional[VQConfig]:
    """The tokenizer config when the presets or --set state its shape (size or a shape field), else None: what a
    checkpoint that records no config may take from them."""
    said = {"size", "ch", "ch_mult", "z_channels", "codebook_size", "codebook_dim", "norm_groups"}
    return vq_config_from(config) if said & config.tokenizer.model_fields_set else None


def tokenizer_location(config: MiraiConfig) -> Path:
    """Where the tokenizer lives: tokenizer.checkpoint (a file, or a `tokenize fit` folder)."""
    if config.tokenizer.checkpoint:
        return Path(config.tokenizer.checkpoint)
    return Path(config.data.store).parent / "tokenizer"


def fit_config_from(config: MiraiConfig, out_dir: Optional[Path] = None, show_progress: bool = True) -> FitConfig:
    t, d = config.tokenizer, config.data
    return FitConfig(
        source=d.source, out_dir=str(out_dir or tokenizer_location(config)), vq=vq_config_from(config),
        image_size=d.image_size, split=d.split, steps=t.fit_steps, batch_size=t.fit_batch_size, lr=t.fit_lr,
        seed=config.train.seed, perceptual_weight=t.perceptual_weight, lpips_vgg_weights=t.perceptual_weights,
        disc_start=t.disc_start, disc_weight=t.disc_weight, precision=config.train.precision,
        log_every=config.train.log_every, time_limit_s=t.fit_time_limit, show_progress=show_progress,
    )


def validation_store_path(config: MiraiConfig) -> Optional[Path]:
    """Where the held-out images' token store lives (None when data.val_images is 0)."""
    if config.data.val_images <= 0:
        return None
    return Path(config.data.val_store or config.data.store.rstrip("/") + "-val")


def encode_from_config(config: MiraiConfig, tokenizer: Optional[Path] = None, store: Optional[Path] = None,
                       show_progress: bool = True, log: Optional[Log] = None, validation: bool = False) -> dict:
    """Encode the training images (or, with `validation`, the held-out ones) into their token store."""
    d, t = config.data, config.tokenizer
    kwargs = {"log": log} if log else {}
    train_split, val_split, val_limit = training_and_validation_splits(d.source, d.split, d.val_images)
    if validation:
        if val_split is None:
            raise MiraiError("no validation images: set data.val_images to a number of held-out images")
        split, limit, default_store = val_split, val_limit, validation_store_path(config)
    else:
        split, limit, default_store = train_split, d.max_images, Path(d.store)
    exact = "data.val_images" if validation else None  # a validation set of N images is N, never fewer
    return encode_store(
        tokenizer or tokenizer_location(config), d.source, store or default_store, image_size=d.image_size,
        crop_mode=d.crop, crop_ratio=d.crop_ratio, split=split, batch_size=t.encode_batch_size, shard_size=t.shard_size,
        precision=t.encode_precision, strict=d.strict, limit=limit, limit_setting=exact, stated=stated_vq_config(config),
        num_workers=d.num_workers,
        extra={"preset": config_to_dict(config)}, show_progress=show_progress, **kwargs,
    )


def tokenizer_exists(config: MiraiConfig) -> bool:
    location = tokenizer_location(config)
    return location.is_file() or (location / "tokenizer.pt").is_file()


def ensure_tokenizer_and_store(config: MiraiConfig, show_progress: bool = True, log: Log = print) -> Optional[FitResult]:
    """Fit the tokenizer if there is none, then encode (or finish encoding) the token store."""
    fitted = None
    location = tokenizer_location(config)
    if not tokenizer_exists(config):
        if location.suffix in (".pt", ".pth", ".safetensors"):
            raise MiraiError(f"tokenizer checkpoint {location} not found; download it or point tokenizer.checkpoint "
                             "at a folder to fit one there")
        check_not_an_input(location, {"data.source": config.data.source})  # before its preset.toml is written
        log(f"fitting the tokenizer into {location} ({config.tokenizer.fit_steps} steps)")
        location.mkdir(parents=True, exist_ok=True)
        (location / "preset.toml").write_text(resolved_toml(config))
        fitted = fit_tokenizer(fit_config_from(config, location, show_progress))
        log(f"tokenizer: PSNR {fitted.psnr:.2f} dB, codebook usage {100 * fitted.codebook_usage:.1f}% "
            f"({fitted.codes_used} codes), {fitted.seconds:.0f} s")
    manifest = Path(config.data.store) / "manifest.json"
    complete = manifest.is_file() and json.loads(manifest.read_text()).get("status") == "complete"
    if not complete:
        log(f"encoding {config.data.source} into {config.data.store}")
    encode_from_config(config, show_progress=show_progress, log=log)
    val_store = validation_store_path(config)
    if val_store is not None:
        if not (val_store / "manifest.json").is_file():
            log(f"encoding {config.data.val_images} held-out validation images into {val_store}")
        encode_from_config(config, show_progress=show_progress, log=log, validation=True)
    return fitted
