"""Tokenizer checkpoints: ours ({"model", "config", "extra", "format"}) and LlamaGen's ({"model": sd})."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mirai_cli.errors import MiraiError
from mirai_cli.files.atomic import torch_save
from mirai_cli.files.hashing import sha256_file, state_dict_sha256
from mirai_cli.tokenizer.config import VQConfig
from mirai_cli.tokenizer.vq_model import VQModel

FORMAT = "mirai-vq-1"


def save_tokenizer(path: str | Path, model: VQModel, cfg: VQConfig, extra: dict[str, Any] | None = None) -> Path:
    """Write weights + config + plain `extra` data (e.g. image_size, training summary). torch.load(
    weights_only=True)-safe; the weights sit under "model" like LlamaGen's, so its tools read ours too."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch_save({"format": FORMAT, "model": state, "config": cfg.to_dict(), "extra": extra or {}}, path)
    return Path(path)


def resolve_tokenizer_path(path: str | Path) -> Path:
    """A checkpoint file, or a `tokenize fit` output folder (its tokenizer.pt)."""
    path = Path(path).expanduser()
    if path.is_dir():
        if (path / "tokenizer.pt").is_file():
            return (path / "tokenizer.pt").resolve()
        raise MiraiError(f"{path} is a folder without tokenizer.pt: run `mirai tokenize fit` into it first, or give "
                         "the checkpoint file")
    if not path.is_file():
        raise MiraiError(f"tokenizer checkpoint not found: {path} (train one with `mirai tokenize fit`, or give "
                         "LlamaGen's vq_ds16_c2i.pt)")
    return path.resolve()


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = resolve_tokenizer_path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for damaged or foreign files
        raise MiraiError(f"cannot read tokenizer checkpoint {path}: {type(e).__name__}: {str(e)[:200]}") from e
    return obj


def state_dict_of(obj: Any, path: str | Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("model", "module", "state_dict", "ema"):
            if isinstance(obj.get(key), dict):
                return obj[key]
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj  # a bare state dict
    raise MiraiError(f"{path} holds no tokenizer state dict (looked under 'model', 'module', 'state_dict')")


def shape_config(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    """What the tensor shapes of a LlamaGen-named VQ state dict determine (GroupNorm groups and the codebook's
    L2 normalisation are not among them)."""
    try:
        ch = sd["encoder.conv_in.weight"].shape[0]
        levels = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"encoder\.conv_blocks\.(\d+)\.", k)))
        ch_mult = [sd[f"encoder.conv_blocks.{i}.res.0.conv1.weight"].shape[0] // ch for i in range(levels)]

        def count(prefix: str) -> int:
            return 1 + max(int(m.group(1)) for k in sd if (m := re.match(re.escape(prefix) + r"(\d+)\.", k)))

        n_codes, dim = sd["quantize.embedding.weight"].shape
        found = {
            "ch": ch, "ch_mult": tuple(ch_mult), "num_res_blocks": count("encoder.conv_blocks.0.res."),
            "decoder_num_res_blocks": count("decoder.conv_blocks.0.res."),
            "z_channels": sd["encoder.conv_out.weight"].shape[0], "codebook_size": n_codes, "codebook_dim": dim,
        }
    except (KeyError, ValueError) as e:
        raise MiraiError(f"state dict does not look like a LlamaGen VQ tokenizer (missing {e})") from e
    if "quantize.codebook_used" in sd:
        found["usage_buffer"] = sd["quantize.codebook_used"].shape[0]
    return {k: (int(v) if not isinstance(v, tuple) else v) for k, v in found.items()}


def infer_config(sd: dict[str, torch.Tensor], stated: VQConfig | None = None, source: str | Path = "state dict") -> VQConfig:
    """The config of a state dict that records none: a LlamaGen size (VQ-16, VQ-8: LlamaGen's code fixes 32
    GroupNorm groups and an L2-normalised codebook) when the shapes are exactly one, else the user's stated
    config; otherwise one line naming the settings to give."""
    found = shape_config(sd)
    for named in (VQConfig.vq16(), VQConfig.vq8()):
        if all(getattr(named, k) == v for k, v in found.items()):
            return named
    if stated is not None:
        return stated
    def value(v: Any) -> str:
        return "[" + ",".join(map(str, v)) + "]" if isinstance(v, tuple) else str(v)

    flags = " ".join(f"--set tokenizer.{k}={value(v)}" for k, v in found.items() if k != "usage_buffer")
    raise MiraiError(f"{source} records no config and is no LlamaGen size (VQ-16, VQ-8), and its GroupNorm groups "
                     f"are not in the weights: give the tokenizer, e.g. --set tokenizer.size=custom {flags} "
                     "--set tokenizer.norm_groups=<groups>")


def check_fits(sd: dict[str, torch.Tensor], model: VQModel, path: str | Path) -> None:
    """One clear line naming the first key that does not fit (missing, unexpected or shape)."""
    want = model.state_dict()
    for k, v in want.items():
        if k not in sd:
            raise MiraiError(f"tokenizer checkpoint {path} does not fit the tokenizer config: key '{k}' "
                             f"(shape {list(v.shape)}) is missing from the checkpoint")
        if tuple(sd[k].shape) != tuple(v.shape):
            raise MiraiError(f"tokenizer checkpoint {path} does not fit the tokenizer config: key '{k}' has "
                             f"shape {list(sd[k].shape)} in the checkpoint but {list(v.shape)} in the model; "
                             "fix the preset's tokenizer section or use the matching checkpoint")
    for k, v in sd.items():
        if k not in want:
            raise MiraiError(f"tokenizer checkpoint {path} does not fit the tokenizer config: unexpected key "
                             f"'{k}' (shape {list(v.shape)})")


def load_tokenizer(path: str | Path, cfg: VQConfig | None = None, device: str | torch.device = "cpu", *,
                   stated: VQConfig | None = None) -> tuple[VQModel, VQConfig]:
    """Load our checkpoint or LlamaGen's `vq_ds16_c2i.pt` strictly; eval mode. `cfg` forces a config (checked
    against the weights); without it the config is the one the checkpoint records (ours) or `infer_config`'s
    (LlamaGen's; `stated`, the user's tokenizer section, fills in only for files of no LlamaGen size)."""
    model, cfg, _ = load_tokenizer_with_extra(path, cfg, device, stated=stated)
    return model, cfg


def load_tokenizer_with_extra(path: str | Path, cfg: VQConfig | None = None, device: str | torch.device = "cpu", *,
                              stated: VQConfig | None = None) -> tuple[VQModel, VQConfig, dict[str, Any]]:
    """As load_tokenizer, plus the checkpoint's `extra` dict ({} for LlamaGen files)."""
    obj = read_checkpoint(path)
    sd = state_dict_of(obj, path)
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    if cfg is None:
        if isinstance(obj, dict) and isinstance(obj.get("config"), dict):
            cfg = VQConfig.from_dict(obj["config"])
        else:
            cfg = infer_config(sd, stated, path)
    model = VQModel(cfg)
    check_fits(sd, model, path)
    model.load_state_dict(sd, strict=True)
    extra = dict(obj.get("extra") or {}) if isinstance(obj, dict) and isinstance(obj.get("extra"), dict) else {}
    return model.to(device).eval(), cfg, extra


@dataclass(frozen=True)
class TokenizerIdentity:
    """What identifies a tokenizer: its config and weights (`weights`), not its file's bytes, which also hold the
    fit's run time; so a refit with the same settings, or a copy saved again, is the same tokenizer. `file` is
    the checkpoint's sha256, which stores and runs made by earlier versions recorded: both are accepted."""

    weights: str
    file: str

    def matches(self, recorded: str | None) -> bool:
        return recorded in (self.weights, self.file)


def tokenizer_identity(path: str | Path, model: VQModel | None = None, cfg: VQConfig | None = None) -> TokenizerIdentity:
    """The identity of the checkpoint at `path` (pass the loaded model and config to avoid loading it again)."""
    path = resolve_tokenizer_path(path)
    if model is None or cfg is None:
        model, cfg = load_tokenizer(path)
    config = {k: v for k, v in cfg.to_dict().items() if k != "name"}  # the name is a label, not the tokenizer
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    digest.update(state_dict_sha256(model).encode())
    return TokenizerIdentity(weights=digest.hexdigest(), file=sha256_file(path))
