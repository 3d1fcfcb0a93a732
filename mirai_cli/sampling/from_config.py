"""The preset's `sample` section (plus command-line choices) -> a SampleJob (shared by `mirai sample` and
`mirai ablate`)."""

from __future__ import annotations

from pathlib import Path

from mirai_cli.config import MiraiConfig
from mirai_cli.errors import MiraiError
from mirai_cli.gpt.checkpoint import find_checkpoint_dir
from mirai_cli.gpt.generate import SampleOptions
from mirai_cli.sampling.job import SampleJob
from mirai_cli.tokenizer.from_config import stated_vq_config


def default_out_dir(source: str, weights: str, cfg_scale: float, seed: int) -> Path:
    """<run>/samples/<checkpoint>-<weights>-cfg<s>-seed<n>: one folder per checkpoint and setting, so sampling
    again with other settings never collides with earlier samples. Files (LlamaGen .pt) sample into
    samples/<file stem>-... in the working folder."""
    src = Path(source)
    tag = f"{weights}-cfg{cfg_scale:g}-seed{seed}"
    if src.is_dir():
        ckpt = find_checkpoint_dir(src)
        run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
        return run / "samples" / f"{ckpt.name}-{tag}"
    return Path("samples") / f"{src.stem}-{tag}"


def stated_shape(config: MiraiConfig) -> tuple[tuple[int, int, int] | None, int | None]:
    """The model shape (layers, dim, heads) and image size the presets or --set state explicitly (None where
    only defaults speak): what a checkpoint that records no config may take from them."""
    m = config.model
    said_model = bool({"size", "layers", "dim", "heads"} & m.model_fields_set)
    shape = (m.layers, m.dim, m.heads) if said_model else None
    image_size = config.data.image_size if "image_size" in config.data.model_fields_set else None
    return shape, image_size  # type: ignore[return-value]


def sample_job_from_config(
    config: MiraiConfig,
    source: str,
    *,
    out_dir: str | None = None,
    tokenizer: str | None = None,
    weights: str | None = None,
    classes: list[int] | None = None,
    per_class: int | None = None,
    random_classes: int | None = None,
    cfg_scale: float | None = None,
    seed: int | None = None,
    device: str = "auto",
) -> SampleJob:
    """Command-line values win over the preset's; None means "take the preset's"."""
    sc = config.sample
    if classes is not None and random_classes is not None:
        raise MiraiError("give either --classes or --random, not both")
    if classes is None and random_classes is None and per_class is None:
        classes, random_classes = sc.classes, sc.random_classes
    weights = weights or sc.weights
    cfg_scale = sc.cfg_scale if cfg_scale is None else cfg_scale
    seed = sc.seed if seed is None else seed
    options = SampleOptions.from_settings(sc, cfg_scale=cfg_scale)
    model_shape, image_size = stated_shape(config)
    return SampleJob(
        checkpoint=source,
        model_shape=model_shape,
        tokenizer_config=stated_vq_config(config),
        image_size=image_size,
        out_dir=str(out_dir or default_out_dir(source, weights, cfg_scale, seed)),
        tokenizer=tokenizer,
        default_tokenizer=config.tokenizer.checkpoint,
        weights=weights,
        classes=list(classes) if classes is not None else None,
        per_class=per_class if per_class is not None else sc.per_class,
        random_classes=random_classes,
        options=options,
        batch_size=sc.batch_size,
        shard_size=sc.shard_size,
        seed=seed,
        device=device,
    )
