"""The shape and regularisation of a LlamaGen-style class-conditional GPT, as a plain dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mirai_cli.config.registries import GPT_SIZES, heads_problem
from mirai_cli.config.schema import section_defaults
from mirai_cli.errors import MiraiError

NAMED_SIZES = GPT_SIZES  # name: (layers, dim, heads), from the registry the preset schema validates against
MODEL = section_defaults("model")  # the preset's [model] defaults: the one place they are written

CLASS_ROPE_MODES = ("zero", "identity")


def round_up(n: int, k: int) -> int:
    return n if n % k == 0 else n + k - n % k


@dataclass
class GPTConfig:
    vocab_size: int
    num_classes: int
    layers: int
    dim: int
    heads: int
    grid: tuple[int, int] = (16, 16)
    class_dropout: float = MODEL["class_dropout"]
    token_dropout: float = MODEL["token_dropout"]
    resid_dropout: float = MODEL["resid_dropout"]
    ffn_dropout: float = MODEL["ffn_dropout"]
    attn_dropout: float = MODEL["attn_dropout"]
    rope_base: float = MODEL["rope_base"]
    norm_eps: float = MODEL["norm_eps"]
    multiple_of: int = MODEL["multiple_of"]
    ffn_dim_multiplier: float | None = None
    init_std: float = MODEL["init_std"]
    # What the rotary table holds at the class position. LlamaGen stores cos = sin = 0 there, which zeroes the
    # class position's query and key (not "no rotation"); "zero" reproduces LlamaGen's logits exactly,
    # "identity" (cos = 1, sin = 0) leaves that position unrotated.
    class_rope: str = "zero"
    name: str = field(default="custom")

    def __post_init__(self) -> None:
        self.grid = (int(self.grid[0]), int(self.grid[1]))
        problems = [problem] if (problem := heads_problem(self.dim, self.heads)) else []
        if min(self.vocab_size, self.num_classes, self.layers, self.grid[0], self.grid[1]) < 1:
            problems.append("vocab_size, num_classes, layers and grid must all be >= 1")
        if self.class_rope not in CLASS_ROPE_MODES:
            problems.append(f"class_rope must be one of {CLASS_ROPE_MODES}, not {self.class_rope!r}")
        if problems:
            raise MiraiError("invalid GPT config: " + "; ".join(problems))

    @classmethod
    def named(cls, name: str, **kwargs: Any) -> GPTConfig:
        """A LlamaGen size by name (GPT-B/L/XL/XXL); vocab_size, num_classes, grid etc. come from kwargs."""
        if name not in NAMED_SIZES:
            raise MiraiError(f"unknown GPT size {name!r}; choose one of {', '.join(NAMED_SIZES)}")
        layers, dim, heads = NAMED_SIZES[name]
        return cls(layers=layers, dim=dim, heads=heads, name=name, **kwargs)

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def seq_len(self) -> int:
        """N = h * w: the number of image tokens, which is also the training sequence length."""
        return self.grid[0] * self.grid[1]

    @property
    def ffn_hidden(self) -> int:
        # LlamaGen/llama: int(2/3 * 4d), optionally scaled, then rounded up to a multiple of multiple_of.
        hidden = int(2 * (4 * self.dim) / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return round_up(hidden, self.multiple_of)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe data (what checkpoints store as `gpt_config`)."""
        out = dataclasses.asdict(self)
        out["grid"] = list(self.grid)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GPTConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MiraiError(f"gpt_config has unknown fields {unknown}; was it written by a newer mirai?")
        return cls(**data)
