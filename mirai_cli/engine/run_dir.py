"""A self-describing run folder: the resolved preset, a manifest (versions, git commit, seed), metrics and
checkpoints. Resuming checks that the folder was made by the same preset."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from mirai_cli.config import MiraiConfig, resolved_toml
from mirai_cli.config.loader import load_config
from mirai_cli.errors import MiraiError
from mirai_cli.files.atomic import write_json, write_text
from mirai_cli.files.locks import acquire
from mirai_cli.files.manifest import manifest
from mirai_cli.tokenizer.from_config import validation_store_path

PRESET_FILE = "preset.toml"
MANIFEST_FILE = "manifest.json"

# Fields that may change between a run and its resume: they do not change what is trained.
RESUMABLE_CHANGES = {
    ("name",), ("description",), ("train", "duration"), ("train", "log_every"), ("train", "ckpt_every"),
    ("train", "keep_last"), ("train", "eval_every"), ("train", "run_dir"), ("train", "compile"),
    ("train", "micro_batch_size"), ("train", "parallel"), ("train", "activation_checkpointing"),
    ("train", "tensorboard"), ("data", "num_workers"), ("sample",), ("eval",), ("ablate",),
}


def resolve_run_dir(config: MiraiConfig) -> Path:
    return Path(config.train.run_dir.format(name=config.name))


def _differences(old: Any, new: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out.extend(_differences(old.get(key), new.get(key), prefix + (key,)))
        return out
    return [] if old == new else [prefix]


def check_same_preset(run_dir: Path, config: MiraiConfig) -> None:
    """On --resume: the run folder's preset must equal this one, except fields that do not change training."""
    path = run_dir / PRESET_FILE
    if not path.is_file():
        raise MiraiError(f"{run_dir} has no {PRESET_FILE}: it is not a mirai run folder, cannot --resume it")
    difference = unresumable_difference(load_config([str(path)]), config)
    if difference:
        raise MiraiError(
            f"{run_dir} was trained with another preset ({difference}); "
            f"resume with the same preset, or train into a new folder with --set train.run_dir=..."
        )


def unresumable_difference(old_config: MiraiConfig, config: MiraiConfig) -> Optional[str]:
    """The first setting in which `config` may not continue a run of `old_config`, as "key = old there, new now"
    (None: it may)."""
    old = old_config.model_dump(by_alias=True)
    new = config.model_dump(by_alias=True)
    # Name the difference a user recognises first (the method, the model, the data), then the rest.
    headline = [("foresight", "source"), ("model", "size"), ("data", "source"), ("data", "store")]
    diffs = sorted(_differences(old, new), key=lambda d: headline.index(d) if d in headline else len(headline))
    for diff in diffs:
        if not any(diff[: len(allowed)] == allowed for allowed in RESUMABLE_CHANGES):
            old_value, new_value = old, new
            for part in diff:
                old_value = old_value.get(part) if isinstance(old_value, dict) else None
                new_value = new_value.get(part) if isinstance(new_value, dict) else None
            return f"{'.'.join(diff)} = {old_value!r} there, {new_value!r} now"
    return None


def prepare_run_dir(run_dir: Path, config: MiraiConfig, resume: bool, extra_manifest: dict[str, Any]) -> None:
    """Create (or, on resume, check) the run folder and write the resolved preset and manifest. The folder stays
    locked by this process until it ends (or locks.release(run_dir)), so a second job into it stops."""
    acquire(run_dir, {"data.store": config.data.store, "data.val_store": validation_store_path(config)})
    has_checkpoints = (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").glob("step_*"))
    if resume:
        check_same_preset(run_dir, config)
    elif has_checkpoints:
        raise MiraiError(
            f"{run_dir} already holds a run; continue it with --resume, or choose another folder with "
            f"--set train.run_dir=... (nothing was overwritten)"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / PRESET_FILE, resolved_toml(config))
    write_json(run_dir / MANIFEST_FILE, manifest("mirai-run", config.train.seed, preset=config.name, **extra_manifest))
