"""LlamaGen's VQ tokenizer (encoder, quantiser, decoder) with LlamaGen's exact parameter names, so public
`vq_ds16_c2i.pt` weights load with strict=True. Written from the published architecture (docs/method.md, "Tokenizer")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mirai_cli.tokenizer.config import VQConfig
from mirai_cli.tokenizer.quantizer import QuantOutput, VectorQuantizer


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=groups, num_channels=channels, eps=1e-6, affine=True)


def _swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


class ResnetBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1 = _norm(c_in, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = _norm(c_out, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        # 1x1 projection of the skip path when the width changes ("nin" = network-in-network)
        self.nin_shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(_swish(self.norm1(x)))
        h = self.conv2(self.dropout(_swish(self.norm2(h))))
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return skip + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all spatial positions, 1x1 convs for q, k, v and the output."""

    def __init__(self, c: int, groups: int) -> None:
        super().__init__()
        self.norm = _norm(c, groups)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        q, k, v = (m(y).reshape(b, c, h * w).transpose(1, 2) for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(c)) v, as LlamaGen
        return x + self.proj_out(out.transpose(1, 2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # asymmetric pad: right and bottom only


class Upsample(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Encoder(nn.Module):
    def __init__(self, cfg: VQConfig, in_channels: int = 3) -> None:
        super().__init__()
        g, levels = cfg.norm_groups, len(cfg.ch_mult)
        self.conv_in = nn.Conv2d(in_channels, cfg.ch, 3, padding=1)
        self.conv_blocks = nn.ModuleList()
        c = cfg.ch
        for i, mult in enumerate(cfg.ch_mult):
            block = nn.Module()
            block.res = nn.ModuleList()
            block.attn = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                block.res.append(ResnetBlock(c, cfg.ch * mult, cfg.dropout, g))
                c = cfg.ch * mult
                if i == levels - 1:  # attention only at the lowest resolution
                    block.attn.append(AttnBlock(c, g))
            if i != levels - 1:
                block.downsample = Downsample(c)
            self.conv_blocks.append(block)
        self.mid = nn.ModuleList([ResnetBlock(c, c, cfg.dropout, g), AttnBlock(c, g),
                                  ResnetBlock(c, c, cfg.dropout, g)])
        self.norm_out = _norm(c, g)
        self.conv_out = nn.Conv2d(c, cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for block in self.conv_blocks:
            for j, res in enumerate(block.res):
                h = res(h)
                if len(block.attn):
                    h = block.attn[j](h)
            if hasattr(block, "downsample"):
                h = block.downsample(h)
        for m in self.mid:
            h = m(h)
        return self.conv_out(_swish(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, cfg: VQConfig, out_channels: int = 3) -> None:
        super().__init__()
        g = cfg.norm_groups
        c = cfg.ch * cfg.ch_mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, c, 3, padding=1)
        self.mid = nn.ModuleList([ResnetBlock(c, c, cfg.dropout, g), AttnBlock(c, g),
                                  ResnetBlock(c, c, cfg.dropout, g)])
        self.conv_blocks = nn.ModuleList()
        levels = len(cfg.ch_mult)
        for i in reversed(range(levels)):  # lowest resolution first
            block = nn.Module()
            block.res = nn.ModuleList()
            block.attn = nn.ModuleList()
            for _ in range(cfg.decoder_num_res_blocks):
                block.res.append(ResnetBlock(c, cfg.ch * cfg.ch_mult[i], cfg.dropout, g))
                c = cfg.ch * cfg.ch_mult[i]
                if i == levels - 1:
                    block.attn.append(AttnBlock(c, g))
            if i != 0:
                block.upsample = Upsample(c)
            self.conv_blocks.append(block)
        self.norm_out = _norm(c, g)
        self.conv_out = nn.Conv2d(c, out_channels, 3, padding=1)

    @property
    def last_layer(self) -> torch.Tensor:
        return self.conv_out.weight

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        for m in self.mid:
            h = m(h)
        for block in self.conv_blocks:
            for j, res in enumerate(block.res):
                h = res(h)
                if len(block.attn):
                    h = block.attn[j](h)
            if hasattr(block, "upsample"):
                h = block.upsample(h)
        return self.conv_out(_swish(self.norm_out(h)))


class VQModel(nn.Module):
    """Images in [-1, 1] (B, 3, S, S) <-> codes (B, h*w) in raster order, h = w = S / cfg.downsample."""

    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantize = VectorQuantizer(cfg.codebook_size, cfg.codebook_dim, cfg.beta, cfg.codebook_l2_norm,
                                        cfg.usage_buffer)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.codebook_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.codebook_dim, cfg.z_channels, 1)

    def encoder_features(self, images: torch.Tensor) -> torch.Tensor:
        """The encoder's output before quant_conv: (B, z_channels, h, w). Used as a Mirai-I teacher."""
        return self.encoder(images)

    def pre_quant(self, images: torch.Tensor) -> torch.Tensor:
        """(B, codebook_dim, h, w): what the quantiser sees."""
        return self.quant_conv(self.encoder(images))

    def quantize_images(self, images: torch.Tensor) -> QuantOutput:
        return self.quantize(self.pre_quant(images))

    def decode_quant(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z_q.to(self.post_quant_conv.weight.dtype)))

    @torch.no_grad()
    def encode_to_codes(self, images: torch.Tensor) -> torch.Tensor:
        return self.quantize_images(images).codes

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        if grid is None:
            side = round(codes.shape[1] ** 0.5)
            grid = (side, side)
        return self.decode_quant(self.quantize.lookup(codes.long(), grid))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, QuantOutput]:
        q = self.quantize_images(images)
        return self.decode_quant(q.z_q), q
