"""The preset's `sample` section -> a SampleJob (shared by `mirai sample` and `mirai ablate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from mirai_cli.config import MiraiConfig
from mirai_cli.gpt.generate import SampleOptions
from mirai_cli.sampling.job import SampleJob


def sample_job_from_config(
    config: MiraiConfig,
    checkpoint: str,
    *,
    out_dir: Optional[str] = None,
    tokenizer: Optional[str] = None,
    weights: Optional[str] = None,
    classes: Optional[list[int]] = None,
    per_class: Optional[int] = None,
    random_classes: Optional[int] = None,
    cfg_scale: Optional[float] = None,
    seed: Optional[int] = None,
    device: str = "auto",
) -> SampleJob:
    """Command-line values win over the preset's; unset ones come from `config.sample`."""
    s = config.sample
    if classes is None and per_class is None and random_classes is None:
        classes, random_classes = s.classes, s.random_classes
    options = SampleOptions(
        cfg_scale=s.cfg_scale if cfg_scale is None else cfg_scale, cfg_schedule=s.cfg_schedule,
        cfg_interval=s.cfg_interval, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
        precision=s.precision, compile=s.compile,
    )
    source = Path(checkpoint)
    default_out = (source if source.is_dir() else source.parent) / "samples"
    return SampleJob(
        checkpoint=str(checkpoint), out_dir=out_dir or str(default_out), tokenizer=tokenizer,
        weights=weights or s.weights, classes=classes, per_class=per_class or s.per_class,
        random_classes=random_classes, options=options, batch_size=s.batch_size, shard_size=s.shard_size,
        seed=s.seed if seed is None else seed, device=device,
    )
