"""GPT weights on disk: our safetensors files and checkpoint folders, and LlamaGen's public `c2i_*.pt`.

Layouts understood by `load_gpt_checkpoint`:
- a run folder: the newest `checkpoints/step_XXXXXXXX/` inside it;
- a checkpoint folder: `model.safetensors` (raw weights), `ema.safetensors` (EMA weights) and `meta.json`
  (`{"gpt_config": {...}, "step": ..., "tokenizer": {...}}`);
- a `.safetensors` file written by `save_gpt_weights` (its metadata carries the GPT config);
- a LlamaGen `.pt`/`.pth`: state dict under `model`, `module`, `state_dict` (or `ema`), or bare (FSDP export);
  a `freqs_cis` entry is ignored and the config is read off the tensor shapes.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any, Union

import torch

from mirai_cli.errors import MiraiError
from mirai_cli.fileio import atomic_path
from mirai_cli.gpt.config import NAMED_SIZES, GPTConfig
from mirai_cli.gpt.model import GPT

FORMAT = "mirai-gpt-1"
LLAMAGEN_HEAD_DIM = 64  # every LlamaGen size uses 64-wide heads; shapes alone cannot tell the head count
PathLike = Union[str, Path]  # noqa: UP007 (a runtime alias)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(getattr(model, "module", None), torch.nn.Module):
            model = model.module
        else:
            return model


def save_gpt_weights(path: PathLike, model: torch.nn.Module) -> Path:
    """Write the model's weights (LlamaGen names) as safetensors, atomically; the GPT config rides along in the
    file's metadata so the file loads on its own."""
    from safetensors.torch import save_file

    plain = unwrap(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in plain.state_dict().items()}
    meta = {"format": FORMAT}
    if isinstance(getattr(plain, "cfg", None), GPTConfig):
        meta["gpt_config"] = json.dumps(plain.cfg.to_dict())
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return path


# ---- finding the files -----------------------------------------------------------------------------------------
def _step_of(folder: Path) -> int:
    m = re.fullmatch(r"step_(\d+)", folder.name)
    return int(m.group(1)) if m else -1


def find_checkpoint_dir(path: PathLike) -> Path:
    """A checkpoint folder itself, or the newest complete `checkpoints/step_*` of a run folder."""
    path = Path(path)
    if (path / "meta.json").is_file():
        return path
    ckpts = path / "checkpoints"
    candidates = [d for d in ckpts.glob("step_*") if d.is_dir() and (d / "meta.json").is_file()] if ckpts.is_dir() else []
    if not candidates:
        raise MiraiError(
            f"{path} holds no checkpoint (no meta.json, no checkpoints/step_*/meta.json): give a run folder, "
            "a checkpoint folder, a .safetensors file or a LlamaGen .pt"
        )
    return max(candidates, key=_step_of)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise MiraiError(f"cannot read {path}: {e}") from e


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118 (not a dict)
    except Exception as e:  # damaged or foreign file
        raise MiraiError(f"cannot read GPT weights {path}: {type(e).__name__}: {str(e)[:200]}") from e


def _read_torch(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as first:
        # LlamaGen's training checkpoints also pickle their argparse Namespace; allow exactly that class.
        if "Namespace" not in str(first):
            raise MiraiError(f"cannot read GPT checkpoint {path}: {type(first).__name__}: {str(first)[:200]}") from first
        try:
            with torch.serialization.safe_globals([argparse.Namespace]):
                return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise MiraiError(f"cannot read GPT checkpoint {path}: {type(e).__name__}: {str(e)[:200]}") from e


def _llamagen_state_dict(obj: Any, weights: str, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    if isinstance(obj, dict):
        keys = (["ema"] if weights == "ema" else []) + ["model", "module", "state_dict"]
        for key in keys:
            if isinstance(obj.get(key), dict):
                return obj[key], key
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj, "bare"
    raise MiraiError(f"{path} holds no GPT state dict (looked under 'model', 'module', 'state_dict' and bare)")


def _clean(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        for prefix in ("module.", "_orig_mod."):
            k = k.removeprefix(prefix)
        if k == "freqs_cis" or k.endswith(".freqs_cis"):
            continue  # LlamaGen's rotary table: recomputed, never loaded
        out[k] = v
    return out


def _grid_from_name(path: Path) -> tuple[int, int]:
    # LlamaGen names files by image size (c2i_B_256.pt, c2i_XL_384.pt) and uses the 16x-downsampling VQ.
    m = re.search(r"_(\d{2,4})\.pth?$", path.name)
    side = int(m.group(1)) // 16 if m else 16
    return side, side


def infer_config(sd: dict[str, torch.Tensor], grid: tuple[int, int]) -> GPTConfig:
    """Read a GPT config off LlamaGen-named tensor shapes (heads: the LlamaGen size if the shape is one, else
    dim / 64)."""
    try:
        vocab, dim = sd["tok_embeddings.weight"].shape
        num_classes = sd["cls_embedding.embedding_table.weight"].shape[0] - 1
        layers = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"layers\.(\d+)\.", k)))
    except (KeyError, ValueError) as e:
        raise MiraiError(f"state dict does not look like a LlamaGen GPT (missing {e})") from e
    named = [n for n, (nl, nd, _) in NAMED_SIZES.items() if (nl, nd) == (layers, dim)]
    if named:
        return GPTConfig.named(named[0], vocab_size=vocab, num_classes=num_classes, grid=grid)
    if dim % LLAMAGEN_HEAD_DIM:
        raise MiraiError(
            f"cannot tell the head count of a {layers}-layer, {dim}-wide GPT from its weights; "
            "save it with save_gpt_weights (which records the config) instead"
        )
    return GPTConfig(vocab_size=vocab, num_classes=num_classes, layers=layers, dim=dim,
                     heads=dim // LLAMAGEN_HEAD_DIM, grid=grid)


def check_fits(sd: dict[str, torch.Tensor], model: torch.nn.Module, source: PathLike) -> None:
    """One clear line naming the first key that is missing, unexpected or of the wrong shape."""
    want = model.state_dict()
    for k, v in want.items():
        if k not in sd:
            raise MiraiError(f"GPT weights {source} do not fit the model: '{k}' (shape {list(v.shape)}) is missing")
        if tuple(sd[k].shape) != tuple(v.shape):
            raise MiraiError(
                f"GPT weights {source} do not fit the model: '{k}' has shape {list(sd[k].shape)} in the "
                f"checkpoint but {list(v.shape)} in the model; check the model size / vocab / classes"
            )
    for k, v in sd.items():
        if k not in want:
            raise MiraiError(f"GPT weights {source} do not fit the model: unexpected key '{k}' {list(v.shape)}")


def build_from_state_dict(sd: dict[str, torch.Tensor], cfg: GPTConfig, source: PathLike) -> GPT:
    """A GPT holding exactly these weights (float32), built without a wasted random init."""
    with torch.device("meta"):
        model = GPT(cfg)
    check_fits(sd, model, source)
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}
    model.load_state_dict(sd, strict=True, assign=True)
    return model


# ---- the loader ------------------------------------------------------------------------------------------------
def load_gpt_checkpoint(
    path: PathLike,
    weights: str = "ema",
    *,
    grid: tuple[int, int] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[GPT, GPTConfig, dict[str, Any]]:
    """Load GPT weights (see the module doc for the layouts) into a plain GPT in eval mode.

    weights: "ema" (default) or "raw" for our checkpoint folders; for a LlamaGen .pt, "ema" uses its `ema`
    entry when there is one and its model weights otherwise. grid: the token grid, needed only for files that
    do not record it (LlamaGen's: default from the file name, e.g. *_384.pt -> 24x24, else 16x16).
    meta: the checkpoint's meta.json (if any) plus `source`, `format`, `weights`, `weights_file`."""
    if weights not in ("ema", "raw"):
        raise MiraiError(f"weights must be 'ema' or 'raw', not {weights!r}")
    path = Path(path)
    if not path.exists():
        raise MiraiError(f"GPT checkpoint not found: {path}")
    meta: dict[str, Any] = {}
    if path.is_dir():
        ckpt = find_checkpoint_dir(path)
        meta = _read_json(ckpt / "meta.json")
        if not isinstance(meta.get("gpt_config"), dict):
            raise MiraiError(f"{ckpt / 'meta.json'} has no 'gpt_config': is this a mirai checkpoint?")
        file = ckpt / ("ema.safetensors" if weights == "ema" else "model.safetensors")
        if not file.is_file():
            hint = " (was EMA off in training? use --weights raw)" if weights == "ema" else ""
            raise MiraiError(f"{file} not found{hint}")
        sd, _ = _read_safetensors(file)
        cfg = GPTConfig.from_dict(_with_grid(meta["gpt_config"], grid))
        meta.update(format="mirai", weights=weights, checkpoint_dir=str(ckpt))
    elif path.suffix == ".safetensors":
        sd, file_meta = _read_safetensors(path)
        file = path
        if (path.parent / "meta.json").is_file():
            meta = _read_json(path.parent / "meta.json")
        if "gpt_config" in file_meta:
            cfg = GPTConfig.from_dict(_with_grid(json.loads(file_meta["gpt_config"]), grid))
        elif isinstance(meta.get("gpt_config"), dict):
            cfg = GPTConfig.from_dict(_with_grid(meta["gpt_config"], grid))
        else:
            cfg = infer_config(_clean(sd), grid or (16, 16))
        meta.update(format="safetensors", weights="ema" if path.stem == "ema" else "raw")
    else:
        obj = _read_torch(path)
        sd, key = _llamagen_state_dict(obj, weights, path)
        file = path
        cfg = infer_config(_clean(sd), grid or _grid_from_name(path))
        meta.update(format="llamagen", weights="ema" if key == "ema" else "raw", state_dict_key=key)
    model = build_from_state_dict(_clean(sd), cfg, file)
    meta.update(source=str(path), weights_file=str(file))
    return model.to(device).eval(), cfg, meta


def _with_grid(cfg_dict: dict[str, Any], grid: tuple[int, int] | None) -> dict[str, Any]:
    return cfg_dict if grid is None else {**cfg_dict, "grid": list(grid)}
