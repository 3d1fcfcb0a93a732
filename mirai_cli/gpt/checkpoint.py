"""GPT weights on disk: our safetensors files and checkpoint folders, and LlamaGen's public `c2i_*.pt`.

Layouts understood by `load_gpt_checkpoint`:
- a run folder: the newest `checkpoints/step_XXXXXXXX/` inside it;
- a checkpoint folder: `model.safetensors` (raw weights), `ema.safetensors` (EMA weights) and `meta.json`
  (`{"gpt_config": {...}, "step": ..., "tokenizer": {...}}`);
- a `.safetensors` file written by `save_gpt_weights` (its metadata carries the GPT config);
- a LlamaGen `.pt`/`.pth`: state dict under `model`, `module`, `state_dict` (or `ema`), or bare (FSDP export);
  a `freqs_cis` entry is ignored. Such files record no config: `infer_config` takes from the shapes only what
  they determine and stops with one line when the head count or the grid is undecided (docs/method.md,
  "Checkpoints"). The paper's code saves `projectors.*` beside the GPT: dropped and reported.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import torch

from mirai_cli.errors import MiraiError
from mirai_cli.files.atomic import atomic_path
from mirai_cli.gpt.config import NAMED_SIZES, GPTConfig
from mirai_cli.gpt.model import GPT

FORMAT = "mirai-gpt-1"
PathLike = Union[str, Path]  # noqa: UP007 (a runtime alias)
# Training-only modules the paper's code saves beside the GPT's weights (never used at inference).
TRAINING_ONLY_PREFIXES = ("projectors.",)


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


# ---- the checkpoint folder layout (written by mirai_cli.engine.checkpoints) ------------------------------------
CHECKPOINTS = "checkpoints"  # inside a run folder
STEP_DIR = re.compile(r"^step_(\d{8})$")
META = "meta.json"  # written last: a step folder without it is incomplete
TRAIN_STATE = "train_state.pt"
WEIGHT_FILES = {"model": "model.safetensors", "sample_ema": "ema.safetensors"}  # run state key -> file


def checkpoint_root(run_dir: PathLike) -> Path:
    return Path(run_dir) / CHECKPOINTS


def list_checkpoints(run_dir: PathLike) -> list[tuple[int, Path]]:
    """The complete checkpoints of a run folder (step folders holding meta.json), oldest first."""
    root = checkpoint_root(run_dir)
    found = []
    for folder in root.iterdir() if root.is_dir() else []:
        match = STEP_DIR.match(folder.name)
        if match and (folder / META).is_file():
            found.append((int(match.group(1)), folder))
    return sorted(found)


def latest_checkpoint(run_dir: PathLike) -> tuple[int, Path] | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def find_checkpoint_dir(path: PathLike) -> Path:
    """A checkpoint folder itself, or the newest complete checkpoint of a run folder."""
    path = Path(path)
    if (path / META).is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise MiraiError(
            f"{path} holds no checkpoint (no {META}, no {CHECKPOINTS}/step_*/{META}): give a run folder, "
            "a checkpoint folder, a .safetensors file or a LlamaGen .pt"
        )
    return latest[1]


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


def _training_args(obj: Any) -> dict[str, Any]:
    """The argparse Namespace LlamaGen's (and the paper's) training scripts save under `args`, as a dict."""
    args = obj.get("args") if isinstance(obj, dict) else None
    if isinstance(args, argparse.Namespace):
        return vars(args)
    return args if isinstance(args, dict) else {}


def _clean(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        for prefix in ("module.", "_orig_mod."):
            k = k.removeprefix(prefix)
        if k == "freqs_cis" or k.endswith(".freqs_cis"):
            continue  # LlamaGen's rotary table: recomputed, never loaded
        out[k] = v
    return out


def split_training_modules(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(GPT weights, training-only weights). The paper's code saves its foresight projectors beside the GPT's
    weights under `projectors.*`; nothing of them exists at inference (docs/method.md, "Checkpoints")."""
    gpt = {k: v for k, v in sd.items() if not k.startswith(TRAINING_ONLY_PREFIXES)}
    return gpt, {k: v for k, v in sd.items() if k not in gpt}


# ---- what decides the config ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShapeHints:
    """What the user said about a checkpoint's shape (preset or --set); None = not said. Used only for files that
    do not record their config (LlamaGen's), and only where the weights' shapes cannot decide."""

    model: tuple[int, int, int] | None = None  # (layers, dim, heads)
    grid: tuple[int, int] | None = None


# LlamaGen's release names its class-conditional models c2i_<size>_<image px>.pt, all on the 16x VQ-16 codes.
_PUBLIC_NAME = re.compile(r"c2i_(B|L|XL|XXL|XXXL|3B)_(256|384)\.pth?")
_PUBLIC_DOWNSAMPLE = 16


def _shape_facts(sd: dict[str, torch.Tensor]) -> tuple[int, int, int, int]:
    """(vocab, classes, layers, dim): all that the tensor shapes determine by themselves."""
    try:
        vocab, dim = sd["tok_embeddings.weight"].shape
        num_classes = sd["cls_embedding.embedding_table.weight"].shape[0] - 1
        layers = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"layers\.(\d+)\.", k)))
    except (KeyError, ValueError) as e:
        raise MiraiError(f"state dict does not look like a LlamaGen GPT (missing {e})") from e
    return int(vocab), int(num_classes), layers, int(dim)


def _size_from_args(args: dict[str, Any], layers: int, dim: int, source: PathLike) -> str | None:
    """The LlamaGen size the training args name (checked against the weights), if they name one we know."""
    named = args.get("gpt_model")
    if not (isinstance(named, str) and named in NAMED_SIZES):
        return None
    if NAMED_SIZES[named][:2] != (layers, dim):
        raise MiraiError(f"{source}: its training args name {named} but its weights are {layers} layers x {dim} "
                         "wide: the file is inconsistent")
    return named


def _size_from_shapes(layers: int, dim: int) -> str | None:
    # LlamaGen's code builds models only by size name, so a LlamaGen file of these (layers, dim) is that size.
    return next((n for n, (nl, nd, _) in NAMED_SIZES.items() if (nl, nd) == (layers, dim)), None)


def _grid_of(args: dict[str, Any], hints: ShapeHints, source: PathLike, named: str | None) -> tuple[int, int]:
    """Token grid: the training args' image_size / downsample_size, else LlamaGen's public file name (when the
    weights are the size it names), else the user's (preset / --set data.image_size); else one line saying which
    flag decides it."""
    size, down = args.get("image_size"), args.get("downsample_size")
    if isinstance(size, int) and isinstance(down, int) and down > 0 and size % down == 0:
        return size // down, size // down
    m = _PUBLIC_NAME.fullmatch(Path(source).name)
    if m and named == f"GPT-{m.group(1)}":
        side = int(m.group(2)) // _PUBLIC_DOWNSAMPLE
        return side, side
    if hints.grid is not None:
        return hints.grid
    raise MiraiError(f"{source} does not record its token grid (no config, no training args, not a LlamaGen "
                     "c2i_<size>_<px>.pt name): give the image size, e.g. --set data.image_size=256 (grid = "
                     "image size / the tokenizer's downsampling)")


def infer_config(sd: dict[str, torch.Tensor], hints: ShapeHints | None = None, args: dict[str, Any] | None = None,
                 source: PathLike = "state dict") -> GPTConfig:
    """The exact GPT config of a LlamaGen-named state dict that records no config. Shapes decide vocab, classes,
    layers and width; the head count comes from the training args' size, the user's model shape, or a LlamaGen
    size whose (layers, dim) these are; the grid from `_grid_of`. Anything undecided stops with one line."""
    hints, args = hints or ShapeHints(), args or {}
    vocab, num_classes, layers, dim = _shape_facts(sd)
    named = _size_from_args(args, layers, dim, source)
    grid = _grid_of(args, hints, source, named or _size_from_shapes(layers, dim))
    common = {"vocab_size": vocab, "num_classes": num_classes, "grid": grid}
    user_heads = hints.model[2] if hints.model is not None and hints.model[:2] == (layers, dim) else None
    if named is None and user_heads is not None:
        by_shape = _size_from_shapes(layers, dim)
        if by_shape is not None and NAMED_SIZES[by_shape][2] == user_heads:
            return GPTConfig.named(by_shape, **common)
        return GPTConfig(layers=layers, dim=dim, heads=user_heads, **common)
    named = named or _size_from_shapes(layers, dim)
    if named is not None:
        return GPTConfig.named(named, **common)
    raise MiraiError(
        f"{source} records no config and {layers} layers x {dim} wide is no LlamaGen size, so its head count is "
        f"unknown: give it, e.g. --set model.size=custom --set model.layers={layers} --set model.dim={dim} "
        "--set model.heads=<heads>"
    )


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
@dataclass
class RawCheckpoint:
    """A GPT checkpoint read from disk, before a model is built: the GPT's weights, the training-only weights
    found beside them, and what the file records about itself."""

    state_dict: dict[str, torch.Tensor]
    training_only: dict[str, torch.Tensor]
    meta: dict[str, Any]
    file: Path
    recorded_config: dict[str, Any] | None = None  # ours: the GPTConfig as written
    args: dict[str, Any] = field(default_factory=dict)  # LlamaGen's: the training script's arguments

    def config(self, hints: ShapeHints | None = None) -> GPTConfig:
        """The recorded config, or the one `infer_config` derives (the hints fill only what the file leaves open)."""
        if self.recorded_config is not None:
            return GPTConfig.from_dict(self.recorded_config)
        return infer_config(self.state_dict, hints, self.args, self.file)


def read_gpt_checkpoint(path: PathLike, weights: str = "ema") -> RawCheckpoint:
    """Read any layout of the module doc. weights: "ema" (default) or "raw" for our checkpoint folders; for a
    LlamaGen .pt, "ema" uses its `ema` entry when there is one and its model weights otherwise."""
    if weights not in ("ema", "raw"):
        raise MiraiError(f"weights must be 'ema' or 'raw', not {weights!r}")
    path = Path(path)
    if not path.exists():
        raise MiraiError(f"GPT checkpoint not found: {path}")
    if path.is_dir():
        raw = _read_checkpoint_dir(path, weights)
    elif path.suffix == ".safetensors":
        raw = _read_safetensors_file(path)
    else:
        obj = _read_torch(path)
        sd, key = _llamagen_state_dict(obj, weights, path)
        sd, extra = split_training_modules(_clean(sd))
        meta = {"format": "llamagen", "weights": "ema" if key == "ema" else "raw", "state_dict_key": key}
        raw = RawCheckpoint(sd, extra, meta, path, args=_training_args(obj))
    raw.meta.update(source=str(path), weights_file=str(raw.file))
    if raw.training_only:
        raw.meta["dropped"] = sorted({k.split(".")[0] for k in raw.training_only})
        raw.meta["dropped_tensors"] = len(raw.training_only)
    return raw


def _read_checkpoint_dir(path: Path, weights: str) -> RawCheckpoint:
    ckpt = find_checkpoint_dir(path)
    meta = _read_json(ckpt / META)
    if not isinstance(meta.get("gpt_config"), dict):
        raise MiraiError(f"{ckpt / META} has no 'gpt_config': is this a mirai checkpoint?")
    file = ckpt / WEIGHT_FILES["sample_ema" if weights == "ema" else "model"]
    if not file.is_file():
        hint = " (was EMA off in training? use --weights raw)" if weights == "ema" else ""
        raise MiraiError(f"{file} not found{hint}")
    sd, extra = split_training_modules(_clean(_read_safetensors(file)[0]))
    meta.update(format="mirai", weights=weights, checkpoint_dir=str(ckpt))
    return RawCheckpoint(sd, extra, meta, file, recorded_config=meta["gpt_config"])


def _read_safetensors_file(path: Path) -> RawCheckpoint:
    sd, file_meta = _read_safetensors(path)
    meta = _read_json(path.parent / META) if (path.parent / META).is_file() else {}
    recorded = json.loads(file_meta["gpt_config"]) if "gpt_config" in file_meta else meta.get("gpt_config")
    sd, extra = split_training_modules(_clean(sd))
    meta.update(format="safetensors", weights="ema" if path.stem == "ema" else "raw")
    return RawCheckpoint(sd, extra, meta, path, recorded_config=recorded if isinstance(recorded, dict) else None)


def load_gpt_checkpoint(
    path: PathLike,
    weights: str = "ema",
    *,
    hints: ShapeHints | None = None,
    device: str | torch.device = "cpu",
) -> tuple[GPT, GPTConfig, dict[str, Any]]:
    """Load GPT weights (see the module doc for the layouts) into a plain GPT in eval mode.

    hints: the user's model shape and grid, for files that do not record them (see `infer_config`).
    Training-only weights (the paper's code's `projectors.*`) are dropped and named in meta["dropped"].
    meta: the checkpoint's meta.json (if any) plus `source`, `format`, `weights`, `weights_file`."""
    raw = read_gpt_checkpoint(path, weights)
    cfg = raw.config(hints)
    model = build_from_state_dict(raw.state_dict, cfg, raw.file)
    return model.to(device).eval(), cfg, raw.meta
