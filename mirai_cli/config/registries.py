"""The one place for the names users type: GPT sizes, tokenizer sizes, Mirai-I encoders, evaluation extractors
and ablation axes. Plain data, no torch: the preset schema validates against these, and the libraries that
implement them (gpt, foresight.teachers, evaluation) are tested to agree with them."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, Optional

# name: (layers, dim, heads): LlamaGen's class-conditional GPT sizes (docs/method.md, "GPT").
GPT_SIZES: dict[str, tuple[int, int, int]] = {
    "GPT-B": (12, 768, 12),
    "GPT-L": (24, 1024, 16),
    "GPT-XL": (36, 1280, 20),
    "GPT-XXL": (48, 1536, 24),
    "GPT-XXXL": (48, 2560, 40),
    "GPT-3B": (24, 3200, 32),  # the one public size whose heads are not 64 wide (100)
}

def heads_problem(dim: int, heads: int) -> Optional[str]:
    """Why a GPT `dim` wide cannot have `heads` attention heads (None when it can): the heads split the width
    evenly, and each head's width is a multiple of 4 for the 2D rotary embedding (two axes of cos/sin pairs)."""
    if dim % heads:
        return f"dim = {dim} is not divisible by heads = {heads}"
    if (dim // heads) % 4:
        return f"head dim {dim // heads} must be a multiple of 4 for the 2D rotary embedding"
    return None


# LlamaGen's VQ-16 and VQ-8 (docs/method.md, "Tokenizer").
VQ_SIZES: dict[str, dict[str, Any]] = {
    "VQ-16": {"ch": 128, "ch_mult": [1, 1, 2, 2, 4], "z_channels": 256, "codebook_size": 16384, "codebook_dim": 8},
    "VQ-8": {"ch": 128, "ch_mult": [1, 2, 2, 4], "z_channels": 256, "codebook_size": 16384, "codebook_dim": 8},
}

# Mirai-I encoders and their foresight.encoder_layer choices: EfficientNet-Lite = the stride of a stage (its
# last block's output; input size stride x grid makes that map exactly the token grid), DINOv2 = a block,
# 1-indexed. Torch-free so that presets validate without loading torch.
EFFNET_STRIDES = (4, 8, 16, 32)
ENCODER_LAYERS: dict[str, tuple[int, ...]] = {
    "dinov2-vit-s": tuple(range(1, 13)),
    "dinov2-vit-b": tuple(range(1, 13)),
    "dinov2-vit-l": tuple(range(1, 25)),
    "efficientnet-lite0": EFFNET_STRIDES,
    "efficientnet-lite1": EFFNET_STRIDES,
    "efficientnet-lite2": EFFNET_STRIDES,
    "tokenizer": (),
}
ENCODER_NAMES = tuple(ENCODER_LAYERS)


def encoder_layer_problem(name: str, layer: Optional[int], grid: Optional[int] = None,
                          resolution: Optional[int] = None) -> Optional[str]:
    """Why foresight.encoder_layer = `layer` does not work with encoder `name` (None when it does). With an
    EfficientNet stage, an explicit resolution must make that stage's map exactly the grid x grid tokens."""
    if layer is None or name not in ENCODER_LAYERS:
        return None
    layers = ENCODER_LAYERS[name]
    if not layers:
        return f"foresight.encoder_layer: encoder {name} has no layer choice; leave it unset"
    stage = name.startswith("efficientnet")
    if layer not in layers:
        what = f"a stage stride ({', '.join(map(str, layers))})" if stage else f"a block (1..{len(layers)})"
        return f"foresight.encoder_layer = {layer}: {name} takes {what}"
    if stage and grid is not None and resolution is not None and resolution != layer * grid:
        return (f"foresight.encoder_resolution = {resolution} gives {name}'s stride-{layer} stage a "
                f"{resolution / layer:g}x{resolution / layer:g} map, not the {grid}x{grid} token grid; leave "
                f"encoder_resolution unset (it is then {layer * grid}) or set it to {layer * grid}")
    return None

# Feature extractors of `mirai eval` (mirai_cli.evaluation.extractors registers them with torch-fidelity).
EXTRACTOR_NAMES = ("inception-v3-compat", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")

# What `mirai ablate --axis` can vary: axis -> the preset field a variant sets (mirai_cli.ablate.axes chooses the
# values and what else a value fixes).
ABLATE_AXES: dict[str, str] = {
    "level": "foresight.level",
    "layout": "foresight.layout",
    "k": "foresight.k",
    "source": "foresight.source",
    "depth": "foresight.depth",
    "lambda": "foresight.lambda",
    "encoder": "foresight.encoder",
    "warmup": "foresight.warmup",
    "encoder_layer": "foresight.encoder_layer",
    "target_norm": "foresight.target_norm",
}


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """"did you mean 'dinov2-vit-b'? choose one of ..." (the hint only when a choice is close)."""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{hint}choose one of {', '.join(choices)}"


def unknown_name(what: str, name: str, choices: Iterable[str]) -> str:
    return f"unknown {what} '{name}'; {did_you_mean(name, choices)}"
