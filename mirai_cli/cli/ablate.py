"""`mirai ablate --axis AXIS` (one base preset x one axis) or `--study FILE` (named variants) -> runs, a table
and a convergence plot."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from mirai_cli.cli.common import JobsOption, PresetOption, SetOption, console, emit, handle_errors
from mirai_cli.config.registries import ABLATE_AXES, unknown_name


@handle_errors
def ablate_command(
    axis: Optional[str] = typer.Option(None, "--axis", "-a", help=f"the axis to vary: {', '.join(ABLATE_AXES)} (default: ablate.axis)"),
    presets: Optional[List[str]] = PresetOption,
    overrides: Optional[List[str]] = SetOption,
    values: Optional[str] = typer.Option(None, "--values", help="comma-separated axis values (default: the axis's own)"),
    out: Optional[Path] = typer.Option(None, "--out", help="study folder (default: ablate.out_dir)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the variants and the fields in which they differ"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
    jobs: Optional[int] = JobsOption("variants run at once, one process each (default: one per visible GPU, else 1)"),
    only: Optional[str] = typer.Option(None, "--only", help="run just this variant (no report)"),
    study_path: Optional[Path] = typer.Option(
        None, "--study", help="a study file (TOML): named variants of a base preset, e.g. docs/studies/length.toml"
    ),
    variant_names: Optional[List[str]] = typer.Option(
        None, "--variants", help="with --study: these variants (comma-separated; default: all) and their baselines"
    ),
    seeds: Optional[List[str]] = typer.Option(None, "--seeds", help="seeds, comma-separated (default: ablate.seeds)"),
) -> None:
    """Run a study: baseline + one variant per axis value (or a study file's variants), trained, sampled and
    evaluated along the way."""
    from mirai_cli.ablate.axes import differing_fields
    from mirai_cli.ablate.runner import plan_study, plan_study_file, run_study, write_reports
    from mirai_cli.ablate.study_file import seeds_override, split_names
    from mirai_cli.ablate.summary import study_summary
    from mirai_cli.config import load_config
    from mirai_cli.errors import MiraiError
    from mirai_cli.tokenizer.from_config import ensure_tokenizer_and_store

    start = time.perf_counter()
    sets = list(overrides or []) + seeds_override(seeds)
    if study_path is not None:
        if axis or presets or values:
            raise MiraiError("--study names its presets and variants: drop --axis, --preset and --values")
        study = plan_study_file(study_path, split_names(variant_names), sets, out)
    else:
        if variant_names:
            raise MiraiError("--variants needs --study FILE (an --axis study takes --values)")
        preset_list = list(presets or ["tiny"])
        base = load_config(preset_list, sets)
        axis = axis or base.ablate.axis
        if axis is None:
            raise MiraiError(f"give --axis (one of {', '.join(ABLATE_AXES)}) or set ablate.axis in the preset")
        if axis not in ABLATE_AXES:
            raise MiraiError(f"--axis: {unknown_name('ablation axis', axis, ABLATE_AXES)}")
        value_list = [v for v in values.split(",")] if values else base.ablate.values
        study = plan_study(preset_list, sets, axis, value_list, out)
    fields = [f for f in differing_fields(study.variants) if f != "train.run_dir"]
    table = Table(title=f"mirai ablate {' '.join(study.argv[:2])}: {len(study.variants)} variants -> {study.root}")
    table.add_column("variant", style="bold cyan")
    for field in fields:
        table.add_column(field)
    for v in study.variants:
        flat = v.config.model_dump(by_alias=True)  # type: ignore[union-attr]
        row = []
        for field in fields:
            value = flat
            for part in field.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            row.append(escape(str(value)))
        table.add_row(v.name, *row)
    if only is None:
        console.print(table)
    if dry_run:
        return
    if jobs is None:
        import torch

        jobs = max(1, torch.cuda.device_count())
    log = lambda msg: console.print(escape(msg))  # noqa: E731
    results = run_study(study,
                        # a --only process reads the data its parent prepared
                        prepare_data=None if only else (
                            lambda cfg: ensure_tokenizer_and_store(cfg, show_progress=not quiet, log=log)),
                        progress=not quiet, log=log, only=only, jobs=jobs)
    if only is not None:
        return
    reports = write_reports(study, results)
    console.print(f"[green]done[/] in {time.perf_counter() - start:.0f} s")
    for folder, report in reports:  # the full tables are in the report files
        emit(study_summary(report, folder / "report.md"))
