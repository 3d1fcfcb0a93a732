"""VQConfig: the shape of a LlamaGen-style VQ tokenizer, as plain data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mirai_cli.config.registries import VQ_SIZES
from mirai_cli.config.schema import section_defaults
from mirai_cli.errors import MiraiError

TOKENIZER = section_defaults("tokenizer")  # the preset's [tokenizer] defaults: the one place they are written
SHAPE = VQ_SIZES[TOKENIZER["size"]]  # the default size's shape (LlamaGen's VQ-16)


@dataclass
class VQConfig:
    """Architecture of a VQ tokenizer. Defaults are LlamaGen's VQ-16 (docs/method.md, "Tokenizer")."""

    ch: int = SHAPE["ch"]
    ch_mult: tuple[int, ...] = tuple(SHAPE["ch_mult"])
    num_res_blocks: int = TOKENIZER["num_res_blocks"]  # per encoder level
    decoder_num_res_blocks: int = TOKENIZER["decoder_num_res_blocks"]  # per decoder level (LlamaGen: encoder's + 1)
    z_channels: int = SHAPE["z_channels"]
    codebook_size: int = SHAPE["codebook_size"]
    codebook_dim: int = SHAPE["codebook_dim"]
    dropout: float = TOKENIZER["dropout"]
    beta: float = TOKENIZER["beta"]  # commitment weight
    norm_groups: int = TOKENIZER["norm_groups"]  # GroupNorm groups; LlamaGen uses 32, small models may need fewer
    codebook_l2_norm: bool = True
    usage_buffer: int = 65536  # LlamaGen's rolling `quantize.codebook_used` buffer (in the state dict)
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        self.ch_mult = tuple(int(m) for m in self.ch_mult)
        self.validate()

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    def grid(self, image_size: int) -> tuple[int, int]:
        if image_size % self.downsample:
            raise MiraiError(
                f"image size {image_size} is not a multiple of the tokenizer's downsampling factor "
                f"{self.downsample}: pick an image size divisible by {self.downsample}"
            )
        side = image_size // self.downsample
        return side, side

    def validate(self) -> None:
        if not self.ch_mult:
            raise MiraiError("tokenizer ch_mult is empty: give at least one channel multiplier, e.g. [1, 2, 2]")
        for c in {self.ch * m for m in self.ch_mult} | {self.ch}:
            if c % self.norm_groups:
                raise MiraiError(
                    f"tokenizer width {c} (ch={self.ch} x ch_mult) is not divisible by norm_groups="
                    f"{self.norm_groups}: change ch or set norm_groups to a divisor of every width"
                )
        if self.codebook_size < 2 or self.codebook_dim < 1:
            raise MiraiError(
                f"tokenizer codebook {self.codebook_size} x {self.codebook_dim} is too small: "
                "use codebook_size >= 2 and codebook_dim >= 1"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ch_mult"] = list(self.ch_mult)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VQConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise MiraiError(f"unknown tokenizer config field(s) {unknown}; known: {sorted(known)}")
        return cls(**d)

    @classmethod
    def vq16(cls, **overrides: Any) -> VQConfig:
        """LlamaGen VQ-16: 16x downsampling, codebook 16384 x 8, 72M parameters."""
        return cls(**{"name": "VQ-16", **VQ_SIZES["VQ-16"], **overrides})

    @classmethod
    def vq8(cls, **overrides: Any) -> VQConfig:
        """LlamaGen VQ-8: 8x downsampling (ch_mult [1, 2, 2, 4])."""
        return cls(**{"name": "VQ-8", **VQ_SIZES["VQ-8"], **overrides})

    @classmethod
    def tiny(cls, **overrides: Any) -> VQConfig:
        """A small tokenizer that trains in minutes on CPU (4x downsampling, codebook 512 x 8)."""
        base = {
            "name": "tiny", "ch": 32, "ch_mult": (1, 2, 2), "num_res_blocks": 1, "decoder_num_res_blocks": 1,
            "z_channels": 32, "codebook_size": 512, "codebook_dim": 8,
        }
        return cls(**{**base, **overrides})

    @classmethod
    def named(cls, name: str, **overrides: Any) -> VQConfig:
        makers = {"vq-16": cls.vq16, "vq16": cls.vq16, "vq-8": cls.vq8, "vq8": cls.vq8, "tiny": cls.tiny}
        key = name.lower()
        if key == "custom":
            return cls(**overrides)
        if key not in makers:
            raise MiraiError(f"unknown tokenizer config '{name}': use one of VQ-16, VQ-8, tiny, custom")
        return makers[key](**overrides)
