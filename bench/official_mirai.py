"""An official-style Mirai-E training step, the reference of `train_bench.py --official`.

Written for this bench from the public descriptions of LlamaGen (FoundationVision/LlamaGen, gpt.py and
train_c2i.py) and of the paper's Mirai-E code (its Mirai.py model and train_c2i_Mirai_E.py), not copied, and
deliberately independent of mirai_cli so that it measures their layout, not ours:

* the GPT is LlamaGen's: class token + token embeddings, pre-norm blocks (RMSNorm, fused qkv, 2D RoPE on
  (re, im) pairs, causal SDPA, SwiGLU), final RMSNorm, fp32 logits; dropouts as LlamaGen's defaults;
* the student's projectors: K separate MLPs Linear(d, hidden) - SiLU - Linear(hidden, hidden) - SiLU -
  Linear(hidden, z), each run on EVERY position of the residual stream after block `depth`, in the training
  autocast (the paper's model computes them inside its forward);
* the teacher: a second GPT whose state is reloaded from the EMA after every step (`load_state_dict`), run
  in fp32 outside autocast without gradients up to block `depth`;
* the loss of head k with raster offset o_k: the class pair plus student cells [0, N-1-o_k) against teacher
  cells [o_k, N-1) (their raster shift: a column past the row's end continues on the next row), L2-normalised,
  -mean(dot); total = NTP + sum_k lambda_k L_k;
* then clip 1.0, fused AdamW (decay on >= 2-dim tensors), LlamaGen's per-parameter `update_ema`
  (mul_ + add_, over every parameter of the model, projectors included) and the teacher reload.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class RefConfig:
    vocab: int
    classes: int
    layers: int
    dim: int
    heads: int
    grid: int
    depth: int  # student and teacher feature depth
    num_heads: int = 3  # projector heads K
    hidden: int = 2048
    dropout: float = 0.1
    multiple_of: int = 256


def rope_2d(grid: int, head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """[1 + grid^2, head_dim // 2, 2] (cos, sin): half the pairs turn with the row, half with the column; the
    class position gets zeros (LlamaGen's table)."""
    quarter = head_dim // 4
    freqs = 1.0 / base ** (torch.arange(0, quarter).float() * 4 / head_dim)
    pos = torch.arange(grid).float()
    ang = torch.outer(pos, freqs)
    table = torch.cat([ang[:, None].expand(grid, grid, quarter), ang[None].expand(grid, grid, quarter)], -1)
    table = torch.stack([table.cos(), table.sin()], -1).flatten(0, 1)
    return torch.cat([torch.zeros(1, head_dim // 2, 2), table])


def rotate(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    xp = x.float().reshape(*x.shape[:-1], -1, 2)
    t = table.view(1, xp.shape[1], 1, xp.shape[3], 2)
    out = torch.stack([xp[..., 0] * t[..., 0] - xp[..., 1] * t[..., 1],
                       xp[..., 1] * t[..., 0] + xp[..., 0] * t[..., 1]], -1)
    return out.flatten(3).type_as(x)


class Norm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


class Block(nn.Module):
    def __init__(self, c: RefConfig):
        super().__init__()
        hidden = int(2 * 4 * c.dim / 3)
        hidden = -(-hidden // c.multiple_of) * c.multiple_of
        self.heads, self.hd = c.heads, c.dim // c.heads
        self.wqkv, self.wo = nn.Linear(c.dim, 3 * c.dim, bias=False), nn.Linear(c.dim, c.dim, bias=False)
        self.w1, self.w3 = nn.Linear(c.dim, hidden, bias=False), nn.Linear(c.dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, c.dim, bias=False)
        self.n1, self.n2, self.drop = Norm(c.dim), Norm(c.dim), nn.Dropout(c.dropout)

    def forward(self, x, table):
        b, t, d = x.shape
        q, k, v = self.wqkv(self.n1(x)).split(d, -1)
        q, k = (rotate(y.view(b, t, self.heads, self.hd), table) for y in (q, k))
        q, k, v = (y.view(b, t, self.heads, self.hd).transpose(1, 2) for y in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        h = x + self.drop(self.wo(att))
        y = self.n2(h)
        return h + self.drop(self.w2(F.silu(self.w1(y)) * self.w3(y)))


def mlp(dim: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, out))


class RefGPT(nn.Module):
    def __init__(self, c: RefConfig):
        super().__init__()
        self.c = c
        self.cls = nn.Embedding(c.classes + 1, c.dim)
        self.tok = nn.Embedding(c.vocab, c.dim)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.projectors = nn.ModuleList(mlp(c.dim, c.hidden, c.dim) for _ in range(c.num_heads))
        self.norm, self.out = Norm(c.dim), nn.Linear(c.dim, c.vocab, bias=False)
        self.drop = nn.Dropout(c.dropout)
        self.table = rope_2d(c.grid, c.dim // c.heads)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
        nn.init.zeros_(self.out.weight)

    def embed(self, idx, labels):
        if self.training:  # class drop for CFG, 10%
            labels = torch.where(torch.rand(labels.shape, device=labels.device) < 0.1, self.c.classes, labels)
        h = torch.cat([self.cls(labels)[:, None], self.tok(idx)], 1)
        self.table = self.table.to(h.device)
        return self.drop(h), self.table[: h.shape[1]]

    def forward(self, idx, labels, targets):
        h, table = self.embed(idx, labels)
        zs = None
        for i, blk in enumerate(self.blocks):
            h = blk(h, table)
            if i + 1 == self.c.depth:
                n, t, d = h.shape
                zs = [p(h.reshape(-1, d)).reshape(n, t, -1) for p in self.projectors]
        logits = self.out(self.norm(h)).float()
        return zs, F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))

    def features(self, idx, labels):
        h, table = self.embed(idx, labels)
        for blk in self.blocks[: self.c.depth]:
            h = blk(h, table)
        return h


def foresight_losses(teacher: torch.Tensor, students: list[torch.Tensor], offsets: list[int]) -> list[torch.Tensor]:
    t_cls, t_cells = teacher[:, :1], teacher[:, 1:]
    out = []
    for z, o in zip(students, offsets):
        target = torch.cat([t_cls, t_cells[:, o:]], 1)
        pred = torch.cat([z[:, :1], z[:, 1:][:, : target.shape[1] - 1]], 1)
        out.append((-(F.normalize(target, dim=-1) * F.normalize(pred, dim=-1)).sum(-1)).mean())
    return out


class OfficialStep:
    """One official-style Mirai-E step on fixed tokens/labels (what `train_bench --official` times)."""

    def __init__(self, c: RefConfig, device: torch.device, lam: float = 2.0, decay: float = 0.9999):
        torch.manual_seed(0)
        self.c, self.device, self.lam, self.decay = c, device, lam, decay
        self.model = RefGPT(c).to(device).train()
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.teacher = copy.deepcopy(self.model).eval().requires_grad_(False)
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.05},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        self.opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), fused=True)
        w = c.grid
        self.offsets = [0, 1, w, w + 1, 2, w + 2, 2 * w + 2, 2 * w + 1, 2 * w][: c.num_heads]

    def __call__(self, codes: torch.Tensor, labels: torch.Tensor, precision: str) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            zs, ntp = self.model(codes[:, :-1], labels, codes)
        loss = ntp
        if self.c.num_heads:  # 0 heads: LlamaGen's baseline step (no teacher, no projectors)
            with torch.no_grad():
                target = self.teacher.features(codes[:, :-1], labels)
            loss = loss + sum(self.lam * h for h in foresight_losses(target, zs, self.offsets))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.update_ema()
        if self.c.num_heads:
            self.teacher.load_state_dict(self.ema.state_dict())
        return loss.detach()

    @torch.no_grad()
    def update_ema(self) -> None:
        ema = dict(self.ema.named_parameters())
        for name, p in self.model.named_parameters():
            ema[name].mul_(self.decay).add_(p.data, alpha=1 - self.decay)
