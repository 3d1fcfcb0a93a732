"""Training checkpoints: `run/checkpoints/step_XXXXXXXX/` written atomically, the last K kept.

A checkpoint folder holds a run's state dict (engine/run.py, `Run.state_dict`) split into files:
- `model.safetensors` (state "model"), `ema.safetensors` (state "sample_ema"): plain GPT weights (LlamaGen
  names) -> `mirai sample` loads them;
- `train_state.pt`: every other entry (optimizer, foresight heads, teacher EMA, step, RNG), tensors and plain
  data only, so `torch.load(weights_only=True)` reads it;
- `meta.json`: step, GPT config, tokenizer and store identity, written last: a folder without it is incomplete.
The layout's names and the "complete" rule are mirai_cli.gpt.checkpoint's (sampling reads the same folders).
Tensors are full (consolidated), so a checkpoint resumes at any process count and parallel strategy.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError

from mirai_cli.errors import MiraiError
from mirai_cli.files.atomic import torch_load_state
from mirai_cli.files.locks import pid_alive
from mirai_cli.gpt.checkpoint import (
    META,
    TRAIN_STATE,
    WEIGHT_FILES,
    _read_safetensors,
    checkpoint_root,
    latest_checkpoint,
    list_checkpoints,
    save_gpt_weights,
)
from mirai_cli.gpt.config import GPTConfig
from mirai_cli.gpt.model import GPT

TMP_DIR = re.compile(r"^\.tmp_step_\d{8}_(\d+)$")


def clean_temporary(run_dir: Path) -> list[Path]:
    """Remove the temporary folders of checkpoints whose writer was killed (GBs each at GPT-XL)."""
    root = checkpoint_root(run_dir)
    removed = []
    for folder in root.iterdir() if root.is_dir() else []:
        match = TMP_DIR.match(folder.name)
        if match and not pid_alive(int(match.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def disk_full(exc: BaseException, folder: Optional[Path] = None) -> bool:
    """Whether a failed write ran out of space (safetensors and torch.save report it in their own words)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if "No space left" in str(exc):
        return True
    try:
        return folder is not None and shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def write_error(path: Path, exc: BaseException, run_dir: Path) -> MiraiError:
    """One line for a run file that could not be written (a full disk above all); what was written stays."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {str(exc)[:200]}"
    why = "the disk is full" if disk_full(exc, run_dir) else reason
    last = latest_checkpoint(run_dir)
    kept = f"the last complete checkpoint {last[1]} is intact" if last else "no checkpoint was written yet"
    return MiraiError(f"cannot write {path}: {why}; {kept}. Free space, then continue with --resume"
                      + ("" if last else " (or start again)"))


def _write_weights(path: Path, state: dict[str, torch.Tensor], gpt_config: GPTConfig) -> None:
    with torch.device("meta"):  # a GPT shell around the given tensors: no memory, no init
        gpt = GPT(gpt_config)
    gpt.load_state_dict(state, strict=True, assign=True)
    save_gpt_weights(path, gpt)


def save_checkpoint(run_dir: Path, step: int, state: dict[str, Any], meta: dict[str, Any],
                    gpt_config: GPTConfig, keep_last: int) -> Path:
    """Write every file into a temporary folder, then rename it into place; then drop old checkpoints."""
    root = checkpoint_root(run_dir)
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp_step_{step:08d}_{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for key, name in WEIGHT_FILES.items():
            if key in state:
                _write_weights(tmp / name, state[key], gpt_config)
        torch.save({k: v for k, v in state.items() if k not in WEIGHT_FILES}, tmp / TRAIN_STATE)
        (tmp / META).write_text(json.dumps({**meta, "step": step}, indent=2))
        if final.exists():  # the same step saved again (e.g. interrupted right after a periodic save)
            shutil.rmtree(final)
        os.replace(tmp, final)
    except (OSError, RuntimeError, SafetensorError) as exc:  # torch.save and safetensors raise their own types
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(final, exc, run_dir) from None
    for _, old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(folder: Path, needs: tuple[str, ...] = ()) -> dict[str, Any]:
    """The state dict `save_checkpoint` wrote; a damaged, truncated or missing file (of the states in `needs`)
    is one clear error. Every tensor is
    memory-mapped from its file (safetensors are, and train_state.pt with mmap=True; copy-on-write, the files
    never change): a resume copies them into the model and optimizer page by page instead of holding the whole
    checkpoint in RAM on every process first."""
    hint = "delete that checkpoint folder to resume from the one before"
    state = torch_load_state(folder / TRAIN_STATE, "the training state", hint, mmap=True)
    for key, name in WEIGHT_FILES.items():
        if (folder / name).is_file():
            try:
                state[key] = _read_safetensors(folder / name)[0]
            except MiraiError as exc:
                raise MiraiError(f"{exc} (truncated or damaged); {hint}") from None
    missing = [key for key in needs if key not in state]
    if missing:
        name = WEIGHT_FILES.get(missing[0], TRAIN_STATE)
        raise MiraiError(f"checkpoint {folder} lacks {name} (its {missing[0]} weights), which this run resumes from; "
                         f"copy the file back, or {hint}")
    return state


def read_meta(folder: Path) -> dict[str, Any]:
    path = folder / META
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MiraiError(f"cannot read {path}: {exc}; delete that checkpoint folder to resume from the one before") \
            from None
