"""The one place for the names users type: GPT sizes, tokenizer sizes, Mirai-I encoders, evaluation extractors
and ablation axes. Plain data, no torch: the preset schema validates against these, and the libraries that
implement them (gpt, foresight.teachers, evaluation) are tested to agree with them."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

# name: (layers, dim, heads): LlamaGen's class-conditional GPT sizes.
GPT_SIZES: dict[str, tuple[int, int, int]] = {
    "GPT-B": (12, 768, 12),
    "GPT-L": (24, 1024, 16),
    "GPT-XL": (36, 1280, 20),
    "GPT-XXL": (48, 1536, 24),
    "GPT-XXXL": (48, 2560, 40),
    "GPT-3B": (24, 3200, 32),  # the one public size whose heads are not 64 wide (100)
}

# LlamaGen's VQ-16 and VQ-8.
VQ_SIZES: dict[str, dict[str, Any]] = {
    "VQ-16": {"ch": 128, "ch_mult": [1, 1, 2, 2, 4], "z_channels": 256, "codebook_size": 16384, "codebook_dim": 8},
    "VQ-8": {"ch": 128, "ch_mult": [1, 2, 2, 4], "z_channels": 256, "codebook_size": 16384, "codebook_dim": 8},
}

# Mirai-I frozen teachers (mirai_cli.foresight.teachers builds them).
ENCODERS = (
    "dinov2-vit-s",
    "dinov2-vit-b",
    "dinov2-vit-l",
    "efficientnet-lite0",
    "efficientnet-lite1",
    "efficientnet-lite2",
    "tokenizer",
)

# Feature extractors of `mirai eval` (mirai_cli.evaluation.extractors registers them with torch-fidelity).
EXTRACTORS = ("inception-v3-compat", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")

# What `mirai ablate --axis` can vary (mirai_cli.ablate.axes says how).
ABLATE_AXES = ("level", "layout", "k", "source", "depth", "lambda", "encoder", "warmup")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """"did you mean 'dinov2-vit-b'? choose one of ..." (the hint only when a choice is close)."""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{hint}choose one of {', '.join(choices)}"


def unknown_name(what: str, name: str, choices: Iterable[str]) -> str:
    return f"unknown {what} '{name}'; {did_you_mean(name, choices)}"
