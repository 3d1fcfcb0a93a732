"""`mirai tokenize fit | encode | info | decode`: images -> VQ token store."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from mirai_cli.cli.common import (
    PresetOption,
    SetOption,
    check_output_file,
    check_output_folder,
    config_from_options,
    console,
    handle_errors,
)

app = typer.Typer(help="Images -> VQ token store (LlamaGen VQ checkpoints load as they are).", no_args_is_help=True)


@app.command("fit")
@handle_errors
def fit(
    presets: Optional[List[str]] = PresetOption,
    overrides: Optional[List[str]] = SetOption,
    out: Optional[Path] = typer.Option(None, "--out", help="tokenizer folder (default: tokenizer.checkpoint)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    force: bool = typer.Option(False, "--force", help="continue a finished fit in the folder (e.g. more steps) and "
                               "replace its tokenizer.pt"),
) -> None:
    """Train a VQ tokenizer from scratch on the preset's data (resumes an unfinished fit in the same folder)."""
    from mirai_cli.tokenizer.fit import fit_tokenizer
    from mirai_cli.tokenizer.from_config import fit_config_from

    check_output_folder(out, "--out")
    config = config_from_options(presets, overrides)
    fit_cfg = fit_config_from(config, out, show_progress=not quiet)
    fit_cfg.force = force
    v = fit_cfg.vq
    console.print(f"[bold]mirai tokenize fit[/] {config.data.source} at {fit_cfg.image_size} px -> {fit_cfg.out_dir}: "
                  f"ch {v.ch} x {list(v.ch_mult)}, codebook {v.codebook_size} x {v.codebook_dim}, {fit_cfg.steps} steps "
                  f"at batch {fit_cfg.batch_size}, lr {fit_cfg.lr}")
    result = fit_tokenizer(fit_cfg)
    if result.already_fitted:
        console.print(f"already fitted, nothing to do: {fit_cfg.out_dir} holds a finished tokenizer made with these "
                      f"settings (PSNR {result.psnr:.2f} dB); change a setting with --out NEW_FOLDER, or --force to redo")
        return
    console.print(f"[green]done[/]: PSNR {result.psnr:.2f} dB, codebook usage {100 * result.codebook_usage:.1f}% "
                  f"({result.codes_used}/{v.codebook_size}), {result.seconds:.0f} s -> {result.tokenizer_path}; "
                  f"reconstructions {result.grid_png}")


@app.command("encode")
@handle_errors
def encode(
    presets: Optional[List[str]] = PresetOption,
    overrides: Optional[List[str]] = SetOption,
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="checkpoint or fit folder (default: tokenizer.checkpoint)"),
    out: Optional[Path] = typer.Option(None, "--out", help="token store folder (default: data.store)"),
    strict: bool = typer.Option(False, "--strict", help="stop at the first unreadable image instead of skipping it"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Encode the preset's data into a sharded, resumable token store."""
    from mirai_cli.tokenizer.from_config import encode_from_config, tokenizer_location, validation_store_path

    if strict:
        overrides = [*(overrides or []), "data.strict=true"]
    check_output_folder(out, "--out")
    config = config_from_options(presets, overrides)
    target = out or Path(config.data.store)
    console.print(f"[bold]mirai tokenize encode[/] {config.data.source} ({config.data.split}, crops {config.data.crop}, "
                  f"{config.data.image_size} px) with {tokenizer or tokenizer_location(config)} -> {target}")
    manifest = encode_from_config(config, tokenizer, target, show_progress=not quiet)
    console.print(f"[green]done[/]: {manifest.get('count')} images x {manifest.get('num_crops')} crops, grid "
                  f"{manifest.get('grid')} -> {target}")
    val_store = validation_store_path(config)
    if val_store is not None and out is None:
        manifest = encode_from_config(config, tokenizer, show_progress=not quiet, validation=True)
        console.print(f"[green]done[/]: {manifest.get('count')} held-out validation images -> {val_store}")


@app.command("info")
@handle_errors
def info(
    store: Path = typer.Argument(..., help="token store folder"),
    verify: bool = typer.Option(False, "--verify", help="also read every shard and check it"),
) -> None:
    """Summarise a token store."""
    from mirai_cli.data.store import store_info

    summary = store_info(store, verify=verify)
    table = Table(title=f"token store {store}", show_header=False)
    for key, value in summary.items():
        table.add_row(str(key), str(value))
    console.print(table)


@app.command("decode")
@handle_errors
def decode(
    store: Path = typer.Argument(..., help="token store folder"),
    out: Path = typer.Option(Path("store_grid.png"), "--out", help="grid PNG to write"),
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="default: the tokenizer recorded in the store"),
    count: int = typer.Option(16, "--count", help="how many entries (from the first)"),
    crop: int = typer.Option(0, "--crop", help="which crop of each entry"),
) -> None:
    """Decode store entries back into images (a grid PNG), to check a store by eye."""
    from mirai_cli.data.store import read_manifest
    from mirai_cli.tokenizer.decode import decode_store_entries

    check_output_file(out, "--out")
    path = tokenizer or read_manifest(store).get("tokenizer_path")
    png = decode_store_entries(store, path, list(range(count)), out, crop=crop)
    console.print(f"[green]wrote[/] {png}")
