"""`mirai sample`: a trained run (or a public LlamaGen checkpoint) -> PNGs, an ADM-style .npz and a grid."""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional

import typer

from mirai_cli.cli.common import (
    PresetOption,
    SeedOption,
    SetOption,
    check_output_folder,
    config_from_options,
    console,
    handle_errors,
)
from mirai_cli.config.schema import setting_help
from mirai_cli.errors import MiraiError


def parse_classes(text: str) -> list[int]:
    """--classes 1,2,3 -> [1, 2, 3]; anything else is one line naming the flag."""
    try:
        return [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise MiraiError(f"--classes {text!r} is not a list of class numbers: give e.g. --classes 0,3,7") from None


@handle_errors
def sample_command(
    checkpoint: Optional[str] = typer.Argument(
        None, help="run folder, checkpoint folder, .safetensors or LlamaGen c2i_*.pt (default: the preset's run folder)"
    ),
    presets: Optional[List[str]] = PresetOption,
    overrides: Optional[List[str]] = SetOption,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="output folder (default: <run>/samples/<checkpoint>-<weights>-cfg<s>-seed<n>)"),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="VQ checkpoint (default: the one recorded in the run)"),
    weights: Optional[str] = typer.Option(None, "--weights", help=setting_help("sample.weights")),
    classes: Optional[str] = typer.Option(None, "--classes", help="explicit labels, e.g. 1,2,3 (one image each)"),
    per_class: Optional[int] = typer.Option(None, "--per-class", help=setting_help("sample.per_class")),
    random: Optional[int] = typer.Option(None, "--random", help=setting_help("sample.random_classes")),
    cfg_scale: Optional[float] = typer.Option(None, "--cfg-scale", help=setting_help("sample.cfg_scale")),
    seed: Optional[int] = SeedOption(setting_help("sample.seed")),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (one GPU by its index)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Sample class-conditional images with a KV cache and classifier-free guidance."""
    from mirai_cli.engine.run_dir import resolve_run_dir
    from mirai_cli.runtime.device import resolve_device
    from mirai_cli.sampling import run_sample_job
    from mirai_cli.sampling.from_config import sample_job_from_config

    config = config_from_options(presets, overrides)
    source = checkpoint or str(resolve_run_dir(config))
    explicit = parse_classes(classes) if classes else None
    check_output_folder(out, "--out")
    if cfg_scale is not None and not (math.isfinite(cfg_scale) and cfg_scale >= 0):
        raise MiraiError(f"--cfg-scale {cfg_scale} is not a finite number >= 0: give e.g. --cfg-scale 2.0 "
                         "(1.0 turns guidance off)")
    resolve_device(device)  # asked-for hardware that is absent stops here, before any work
    job = sample_job_from_config(
        config, source, out_dir=str(out) if out else None, tokenizer=tokenizer, weights=weights, classes=explicit,
        per_class=per_class, random_classes=random, cfg_scale=cfg_scale, seed=seed, device=device,
    )
    console.print(f"[bold]mirai sample[/] {source} ({job.weights} weights) -> {job.out_dir}: cfg {job.options.cfg_scale} "
                  f"({job.options.cfg_schedule}), temperature {job.options.temperature}, top-k {job.options.top_k}, "
                  f"top-p {job.options.top_p}, seed {job.seed}")
    from mirai_cli.runtime.progress import make_progress

    with make_progress(not quiet) as bar:
        task = bar.add_task("sampling", total=None, status="")
        result = run_sample_job(job, progress=lambda done, total: bar.update(task, completed=done, total=total),
                                log=lambda msg: console.print(msg))
    console.print(f"[green]done[/]: {result.total} images ({result.generated} new, {result.skipped} already there, "
                  f"{result.images_per_second:.2f} img/s) -> {result.out_dir}"
                  + (f"; npz {result.npz}" if result.npz else "") + (f"; grid {result.grid}" if result.grid else ""))
