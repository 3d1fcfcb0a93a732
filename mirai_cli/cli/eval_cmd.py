"""`mirai eval`: FID / IS / KID / precision-recall of generated samples against a reference, and
`mirai eval stats` to store a reference's statistics once.

    mirai eval --fid samples/ --ref VIRTUAL_imagenet256_labeled.npz --isc --prc --out metrics.json
    mirai eval stats fashion-mnist --out fmnist-stats.npz

The first form has no subcommand name (it is `mirai eval run`, the default)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from typer.core import TyperGroup

from mirai_cli.cli.common import (
    PresetOption,
    SeedOption,
    SetOption,
    check_output_file,
    config_from_options,
    console,
    err_console,
    handle_errors,
)
from mirai_cli.config.schema import setting_help
from mirai_cli.errors import MiraiError


class _DefaultRunGroup(TyperGroup):
    """`mirai eval ARGS` means `mirai eval run ARGS` unless ARGS starts with a subcommand name (or --help)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_DefaultRunGroup,
    help="Evaluate samples: FID, IS, KID, precision/recall (torch-fidelity). "
         "Usage: mirai eval --fid SAMPLES --ref REF [--isc --kid --prc] [--out metrics.json]; "
         "mirai eval stats REF --out stats.npz.",
    no_args_is_help=True,
)


def _progress() -> tuple[Progress, Any]:
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("images"),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=True)
    tasks: dict[str, Any] = {}

    def update(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = bar.add_task(f"{label} features", total=total)
        bar.update(tasks[label], completed=done)

    return bar, update


def _settings(presets: list[str] | None, overrides: list[str] | None, given: dict[str, Any],
              implied: tuple[Any, str] | None = None) -> tuple[Any, str | None]:
    """EvalSettings from the preset's eval section (when --preset/--set is given; else from `implied`, the run
    the samples came from), then explicit options."""
    from mirai_cli.evaluation import EvalSettings
    from mirai_cli.evaluation.from_config import eval_settings_from_config

    settings, reference = EvalSettings(), None
    if presets or overrides:
        settings, reference = eval_settings_from_config(config_from_options(presets, overrides))
    elif implied is not None:
        settings, reference = implied
    explicit = {f.name for f in dataclasses.fields(EvalSettings)} & {k for k, v in given.items() if v is not None}
    return dataclasses.replace(settings, **{k: given[k] for k in explicit}), reference


def _metric_table(result: Any) -> Table:
    from mirai_cli.evaluation.result import fmt_value

    ext = result.extractor
    table = Table(title=f"mirai eval · {ext['name']}", title_justify="left", min_width=44)
    table.add_column("metric", style="bold cyan")
    table.add_column("value", justify="right")
    for name, value in result.named().items():
        table.add_row(name, fmt_value(value))
    for metric, why in result.failed.items():
        table.add_row(metric, f"[red]failed: {why}[/]")
    return table


def _summary(result: Any) -> str:
    s, r = result.samples, result.reference
    size = f"{s['image_size'][1]}x{s['image_size'][0]}"
    fid = f", FID statistics {r['fid_statistics']}" if r.get("fid_statistics") else ""
    return f"{s['count']} samples ({size}) vs {r['count']} reference images ({r['kind']} {str(r['id'])[:12]}{fid})"


def _default_out(samples: Path) -> Path:
    samples = Path(samples)
    return samples.parent / f"{samples.stem or 'samples'}.metrics.json"


@app.command("run")
@handle_errors
def run(
    samples: Path = typer.Argument(..., help="generated images: a folder (png/jpg, searched recursively) or an .npz with arr_0"),
    ref: str | None = typer.Option(None, "--ref", "-r", help="reference (default: the one the run that made SAMPLES implies): folder, .npz, ADM batch (uses its mu/sigma), "
                                      "fashion-mnist, or a `mirai eval stats` file"),
    fid: bool = typer.Option(False, "--fid", help="Frechet distance (default when no metric is named)"),
    isc: bool = typer.Option(False, "--isc", help="Inception Score"),
    kid: bool = typer.Option(False, "--kid", help="Kernel Inception Distance"),
    prc: bool = typer.Option(False, "--prc", help="precision / recall (same extractor as FID, like ADM)"),
    extractor: str | None = typer.Option(None, "--extractor", "-e", help=setting_help("eval.extractor")
                                            + "; efficientnet: offline, not comparable with published FID"),
    inception_weights: Path | None = typer.Option(None, "--inception-weights", help=setting_help("eval.inception_weights")
                                                     + "; else $MIRAI_INCEPTION_WEIGHTS"),
    out: Path | None = typer.Option(None, "--out", "-o", help="metrics JSON (default: <samples>.metrics.json beside the samples)"),
    resize: int | None = typer.Option(None, "--resize", help=setting_help("eval.resize")),
    ref_limit: int | None = typer.Option(None, "--ref-limit", help=setting_help("eval.ref_limit")),
    kid_subset_size: int | None = typer.Option(None, "--kid-subset-size", help=setting_help("eval.kid_subset_size")),
    kid_subsets: int | None = typer.Option(None, "--kid-subsets", help=setting_help("eval.kid_subsets")),
    isc_splits: int | None = typer.Option(None, "--isc-splits", help=setting_help("eval.isc_splits")),
    prc_neighborhood: int | None = typer.Option(None, "--prc-neighborhood", help=setting_help("eval.prc_neighborhood")),
    batch_size: int | None = typer.Option(None, "--batch-size", "-b", help=setting_help("eval.batch_size")),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)"),
    workers: int | None = typer.Option(None, "--workers", help="image decoding processes (default 0 on CPU)"),
    seed: int | None = SeedOption("seed of KID subsets, IS shuffle, --ref-limit (default 2020)", evaluation=True),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="reference feature cache (default ~/.cache/mirai/eval)"),
    no_cache: bool = typer.Option(False, "--no-cache", help="do not read or write the reference cache"),
    offline: bool = typer.Option(False, "--offline", help="never download weights"),
    presets: list[str] | None = PresetOption,
    overrides: list[str] | None = SetOption,
) -> None:
    """Compute metrics of SAMPLES against --ref; prints a table and writes JSON. Exit 0 only when every asked
    metric was computed."""
    from mirai_cli.evaluation import evaluate, open_images, open_reference
    from mirai_cli.evaluation.from_config import implied_eval

    check_output_file(out, "--out")
    asked = tuple(m for m, on in (("fid", fid), ("isc", isc), ("kid", kid), ("prc", prc)) if on) or None
    implied = None if (presets or overrides) else implied_eval(samples)
    if implied is not None and implied.problem:
        err_console.print(f"[yellow]warning:[/] the run's preset {implied.preset} did not load ({implied.problem}); "
                          "using the command-line settings and the defaults instead", highlight=False)
    settings, preset_ref = _settings(presets, overrides, {
        "metrics": asked, "extractor": extractor, "inception_weights": str(inception_weights) if inception_weights else None,
        "resize": resize, "ref_limit": ref_limit, "kid_subset_size": kid_subset_size, "kid_subsets": kid_subsets,
        "isc_splits": isc_splits, "prc_neighborhood": prc_neighborhood, "batch_size": batch_size, "device": device,
        "num_workers": workers, "seed": seed, "cache_dir": str(cache_dir) if cache_dir else None,
        "use_cache": False if no_cache else None, "allow_download": False if offline else None},
        (implied.settings, implied.reference) if implied and not implied.problem else None)
    reference = ref or preset_ref
    if not reference and implied is not None and implied.problem:
        raise MiraiError(f"no reference: the run's preset {implied.preset} did not load ({implied.problem}); "
                         "pass --ref (a folder, .npz, ADM batch, fashion-mnist, or a stats file)")
    if not reference:
        raise MiraiError("no reference: pass --ref (a folder, .npz, ADM batch, fashion-mnist, or a stats file), or "
                         "--preset with the run's preset")
    if ref:
        origin = "--ref"
    elif implied:
        origin = f"the run's preset {implied.preset}"
    else:
        origin = "the preset"
    settings = settings.validated()
    sample_set = open_images(samples, resize=settings.resize)
    reference_obj = open_reference(reference, resize=settings.resize, limit=settings.ref_limit, seed=settings.seed)
    err_console.print(f"[bold]eval[/] {', '.join(settings.metrics)} with {settings.extractor}: "
                      f"{sample_set.describe()} vs {reference_obj.describe()} (reference from {origin}, resize "
                      f"{settings.resize or 'off'})", highlight=False)
    bar, update = _progress()
    with bar:
        result = evaluate(sample_set, reference_obj, settings, progress=update)
    console.print(_metric_table(result))
    console.print(_summary(result), highlight=False)
    if not result.comparable:
        err_console.print(f"[yellow]note:[/] numbers from {result.extractor['name']} are not comparable with "
                          "published FID/IS/KID (those use inception-v3-compat)", highlight=False)
    for note in result.notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False)
    path = result.write_json(out or _default_out(samples))
    console.print(f"metrics written to {path}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)


@app.command("stats")
@handle_errors
def stats(
    reference: str = typer.Argument(..., help="reference images: folder, .npz, ADM batch, or fashion-mnist[:test]"),
    out: Path = typer.Option(..., "--out", "-o", help="statistics file to write (.npz)"),
    features: bool = typer.Option(False, "--features", help="also store features, so KID and precision/recall can use the file"),
    extractor: str | None = typer.Option(None, "--extractor", "-e", help=setting_help("eval.extractor")),
    inception_weights: Path | None = typer.Option(None, "--inception-weights", help=setting_help("eval.inception_weights")),
    resize: int | None = typer.Option(None, "--resize", help=setting_help("eval.resize")),
    ref_limit: int | None = typer.Option(None, "--ref-limit", help=setting_help("eval.ref_limit")),
    batch_size: int | None = typer.Option(None, "--batch-size", "-b", help=setting_help("eval.batch_size")),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda"),
    workers: int | None = typer.Option(None, "--workers", help="image decoding processes"),
    seed: int | None = SeedOption("seed of --ref-limit", evaluation=True),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="feature cache folder"),
    no_cache: bool = typer.Option(False, "--no-cache", help="do not read or write the cache"),
    offline: bool = typer.Option(False, "--offline", help="never download weights"),
    presets: list[str] | None = PresetOption,
    overrides: list[str] | None = SetOption,
) -> None:
    """Compute a reference's FID statistics once (mu/sigma; --features adds what KID/PRC need)."""
    from mirai_cli.evaluation import compute_reference_stats

    check_output_file(out, "--out")
    settings, _ = _settings(presets, overrides, {
        "extractor": extractor, "inception_weights": str(inception_weights) if inception_weights else None,
        "resize": resize, "ref_limit": ref_limit, "batch_size": batch_size, "device": device, "num_workers": workers,
        "seed": seed, "cache_dir": str(cache_dir) if cache_dir else None, "use_cache": False if no_cache else None,
        "allow_download": False if offline else None})
    bar, update = _progress()
    with bar:
        meta = compute_reference_stats(reference, out, settings, with_features=features, progress=update)
    h, w = meta["image_size"]
    console.print(f"statistics of {meta['count']} images ({w}x{h}, {meta['extractor']} layer {meta['layer']}"
                  f"{', with features' if meta['feature_layers'] else ''}) written to {out}", highlight=False)
