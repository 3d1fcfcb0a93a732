"""Training checkpoints: `run/checkpoints/step_XXXXXXXX/` written atomically, the last K kept.

A checkpoint folder holds
- `model.safetensors`, `ema.safetensors`: plain GPT weights (LlamaGen names) -> `mirai sample` loads them;
- `train_state.pt`: optimizer, foresight heads, EMA shadows, RNG state (tensors and plain data only, so
  `torch.load(weights_only=True)` reads it);
- `meta.json`: step, GPT config, tokenizer and store identity, written last: a folder without it is incomplete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Optional

import torch

from mirai_cli.errors import MiraiError
from mirai_cli.gpt.checkpoint import save_gpt_weights

STEP_DIR = re.compile(r"^step_(\d{8})$")
TRAIN_STATE = "train_state.pt"


def checkpoint_root(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (meta.json present), oldest first."""
    root = checkpoint_root(run_dir)
    found = []
    if root.is_dir():
        for folder in root.iterdir():
            match = STEP_DIR.match(folder.name)
            if match and (folder / "meta.json").is_file() and (folder / TRAIN_STATE).is_file():
                found.append((int(match.group(1)), folder))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Optional[tuple[int, Path]]:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: torch.nn.Module,
    ema_model: Optional[torch.nn.Module],
    train_state: dict[str, Any],
    meta: dict[str, Any],
    keep_last: int,
) -> Path:
    """Write every file into a temporary folder, then rename it into place; then drop old checkpoints."""
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp_step_{step:08d}_{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_gpt_weights(tmp / "model.safetensors", model)
    if ema_model is not None:
        save_gpt_weights(tmp / "ema.safetensors", ema_model)
    torch.save(train_state, tmp / TRAIN_STATE)
    (tmp / "meta.json").write_text(json.dumps({**meta, "step": step}, indent=2))
    if final.exists():  # the same step saved again (e.g. interrupted right after a periodic save)
        shutil.rmtree(final)
    os.replace(tmp, final)
    for _, old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_train_state(folder: Path) -> dict[str, Any]:
    path = folder / TRAIN_STATE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file must not become a traceback
        raise MiraiError(f"cannot read {path}: {type(exc).__name__}: {str(exc)[:200]}; delete that checkpoint "
                         "folder to resume from the one before") from None

