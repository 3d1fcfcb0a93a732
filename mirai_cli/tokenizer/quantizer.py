"""Vector quantiser with L2-normalised codes (LlamaGen's `VectorQuantizer`, same parameter names)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class QuantOutput:
    z_q: torch.Tensor  # B, D, h, w (straight-through: gradients flow to z)
    codes: torch.Tensor  # B, h*w (long)
    codebook_loss: torch.Tensor  # mean((z_q - sg z)^2)
    commit_loss: torch.Tensor  # beta * mean((sg z_q - z)^2)
    z: torch.Tensor  # B, h*w, D: the (normalised) vectors that were quantised, for codebook care


class VectorQuantizer(nn.Module):
    def __init__(self, codebook_size: int, codebook_dim: int, beta: float, l2_norm: bool = True,
                 usage_buffer: int = 65536) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.codebook_dim = codebook_dim
        self.beta = beta
        self.l2_norm = l2_norm
        self.embedding = nn.Embedding(codebook_size, codebook_dim)
        with torch.no_grad():
            self.embedding.weight.uniform_(-1.0 / codebook_size, 1.0 / codebook_size)
            if l2_norm:
                self.embedding.weight.copy_(F.normalize(self.embedding.weight, dim=-1))
        # LlamaGen keeps the last `usage_buffer` codes seen in training; it is part of the public state dict.
        self.register_buffer("codebook_used", torch.zeros(usage_buffer))

    def normalized_codebook(self) -> torch.Tensor:
        w = self.embedding.weight.float()
        return F.normalize(w, dim=-1) if self.l2_norm else w

    def nearest(self, z_flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of z_flat (N, D); float32 so that codes do not depend on
        the autocast precision of the encoder."""
        e = self.normalized_codebook()
        z_flat = z_flat.float()
        # |z - e|^2 = |z|^2 + |e|^2 - 2 z.e ; chunked to bound memory for large codebooks
        out = torch.empty(z_flat.shape[0], dtype=torch.long, device=z_flat.device)
        e_sq = (e * e).sum(dim=1)
        chunk = max(1, (1 << 24) // max(1, e.shape[0]))
        for s in range(0, z_flat.shape[0], chunk):
            zc = z_flat[s : s + chunk]
            d = (zc * zc).sum(dim=1, keepdim=True) + e_sq - 2.0 * (zc @ e.t())
            out[s : s + chunk] = d.argmin(dim=1)
        return out

    def forward(self, z: torch.Tensor) -> QuantOutput:
        with torch.autocast(device_type=z.device.type, enabled=False):
            b, d, h, w = z.shape
            z = z.float().permute(0, 2, 3, 1).reshape(b, h * w, d)
            if self.l2_norm:
                z = F.normalize(z, dim=-1)
            codes = self.nearest(z.reshape(-1, d)).view(b, h * w)
            z_q = self.normalized_codebook()[codes]
            if self.training:
                self._remember_usage(codes)
            codebook_loss = torch.mean((z_q - z.detach()) ** 2)
            commit_loss = self.beta * torch.mean((z_q.detach() - z) ** 2)
            z_q = z + (z_q - z).detach()  # straight-through estimator
            z_q = z_q.view(b, h, w, d).permute(0, 3, 1, 2).contiguous()
        return QuantOutput(z_q, codes, codebook_loss, commit_loss, z)

    @torch.no_grad()
    def _remember_usage(self, codes: torch.Tensor) -> None:
        flat = codes.reshape(-1).to(self.codebook_used.dtype)
        n = min(flat.numel(), self.codebook_used.numel())
        self.codebook_used.copy_(torch.cat([self.codebook_used[n:], flat[-n:]]))

    def lookup(self, codes: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """codes (B, h*w) -> quantised vectors (B, D, h, w)."""
        b = codes.shape[0]
        h, w = grid
        z_q = self.normalized_codebook()[codes.reshape(b, h * w)]
        return z_q.view(b, h, w, -1).permute(0, 3, 1, 2).contiguous()
