"""LlamaGen's class-conditional GPT (parameter names and math match its public checkpoints).

Sequence convention (docs/method.md, "GPT"): position 0 holds the class embedding, position p >= 1 the embedding of grid
cell p - 1; output position p predicts cell p. Three ways to run it:
- `forward(tokens, labels)`: the whole sequence at once (training, teachers, tests);
- `forward_features(tokens, labels, depth)`: blocks 1..depth only (the Mirai-E teacher);
- `setup_cache` + `prefill` / `decode_step`: one position at a time against a static KV cache (sampling).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mirai_cli.gpt.config import GPTConfig
from mirai_cli.gpt.rope import apply_rope, rope_table


@dataclass
class GPTOutput:
    logits: torch.Tensor  # [B, N, V] float32
    feature: torch.Tensor | None  # [B, N, D] residual stream after block `feature_depth` (1-indexed), or None
    final_hidden: torch.Tensor  # [B, N, D] after the final norm, before the output projection


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in float32 whatever the autocast dtype, as LlamaGen does.
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        hidden = cfg.ffn_hidden
        self.w1 = nn.Linear(cfg.dim, hidden, bias=False)
        self.w3 = nn.Linear(cfg.dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, cfg.dim, bias=False)
        self.ffn_dropout = nn.Dropout(cfg.ffn_dropout)
        self._w13: tuple[tuple, torch.Tensor] | None = None  # decoding: (identity of w1 and w3, [w1; w3])

    def forward(self, x: torch.Tensor, fused: bool = False) -> torch.Tensor:
        if fused:  # decoding: one matmul for w1 and w3 (the same numbers, one launch less per layer)
            a, b = F.linear(x, self.stacked_w13()).chunk(2, dim=-1)
            return self.ffn_dropout(self.w2(F.silu(a) * b))
        return self.ffn_dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))

    def stacked_w13(self) -> torch.Tensor:
        """[w1; w3], rebuilt whenever either weight was changed in place, moved or cast."""
        w1, w3 = self.w1.weight, self.w3.weight
        key = (w1._version, w3._version, w1.data_ptr(), w3.data_ptr(), w1.dtype)
        if self._w13 is None or self._w13[0] != key:
            self._w13 = (key, torch.cat([w1, w3]).detach())
        return self._w13[1]

    def drop_stacked(self) -> None:
        self._w13 = None


class KVCache(nn.Module):
    """Static keys/values [B, heads, max_len, head_dim], allocated once per generation batch.
    Non-persistent buffers: they move with the model but never enter its state dict."""

    def __init__(self, batch: int, heads: int, max_len: int, head_dim: int, dtype: torch.dtype, device=None):
        super().__init__()
        shape = (batch, heads, max_len, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # In-place writes keep the buffers' addresses fixed (good for torch.compile / CUDA graphs).
        self.k.index_copy_(2, pos, k.to(self.k.dtype))
        self.v.index_copy_(2, pos, v.to(self.v.dtype))
        return self.k, self.v


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.heads = cfg.heads
        self.head_dim = cfg.head_dim
        self.wqkv = nn.Linear(cfg.dim, 3 * cfg.dim, bias=False)  # rows: all q heads, then all k, then all v
        self.wo = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.attn_dropout = cfg.attn_dropout
        self.resid_dropout = nn.Dropout(cfg.resid_dropout)
        self.kv_cache: KVCache | None = None

    def forward(
        self,
        x: torch.Tensor,
        rope: torch.Tensor,
        input_pos: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        filled: int | None = None,
    ) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.wqkv(x).view(b, t, 3, self.heads, self.head_dim)
        qk = apply_rope(qkv[:, :, :2], rope)  # queries and keys rotated in one pass
        q, k, v = (y.transpose(1, 2) for y in (qk[:, :, 0], qk[:, :, 1], qkv[:, :, 2]))  # [B, heads, T, head_dim]
        if input_pos is not None:
            assert self.kv_cache is not None, "call setup_cache() before cached decoding"
            k, v = self.kv_cache.update(input_pos, k, v)
            if filled is not None:  # attend only to the slots written so far (all of them, for one new position)
                k, v = k[:, :, :filled], v[:, :, :filled]
                mask = None if t == 1 else mask[..., :filled]
            q = q.to(k.dtype)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            p = self.attn_dropout if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        out = out.transpose(1, 2).reshape(b, t, d)
        return self.resid_dropout(self.wo(out))


class TransformerBlock(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.attention = Attention(cfg)
        self.feed_forward = FeedForward(cfg)
        self.attention_norm = RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.ffn_norm = RMSNorm(cfg.dim, eps=cfg.norm_eps)

    def forward(self, x, rope, input_pos=None, mask=None, filled=None) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x), rope, input_pos, mask, filled)
        # Eager decoding stacks w1 and w3; a compiled step (filled is None) fuses on its own.
        return h + self.feed_forward(self.ffn_norm(h), fused=filled is not None)


class LabelEmbedding(nn.Module):
    """num_classes + 1 rows; the last row is the null class used for classifier-free guidance."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.embedding_table = nn.Embedding(num_classes + 1, dim)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.embedding_table(labels)


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.cls_embedding = LabelEmbedding(cfg.num_classes, cfg.dim)
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.tok_dropout = nn.Dropout(cfg.token_dropout)
        self.layers = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg.layers))
        self.norm = RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        # A plain attribute, not a buffer: it stays float32 under model.to(bf16) and stays out of the state dict.
        self._rope = rope_table(cfg.grid, cfg.head_dim, cfg.rope_base, cfg.class_rope)
        self._cache_mask: torch.Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=self.cfg.init_std)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)
        nn.init.zeros_(self.output.weight)

    # ---- inputs ---------------------------------------------------------------------------------------------
    def drop_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Replace each label by the null class with probability class_dropout (training-time CFG dropout)."""
        drop = torch.rand(labels.shape[0], device=labels.device) < self.cfg.class_dropout
        return torch.where(drop, torch.full_like(labels, self.cfg.num_classes), labels)

    def rope(self, device: torch.device) -> torch.Tensor:
        if self._rope.device != device:
            self._rope = self._rope.to(device)
        return self._rope

    def _embed(self, tokens: torch.Tensor, labels: torch.Tensor, class_drop: bool | None) -> torch.Tensor:
        t = tokens.shape[1]
        if not 1 <= t <= self.cfg.seq_len:
            raise ValueError(f"tokens must hold 1..{self.cfg.seq_len} cells, got {t}")
        if (self.training if class_drop is None else class_drop):
            labels = self.drop_labels(labels)
        x = self.cls_embedding(labels)[:, None]
        if t > 1:  # the last given cell is only a target, never an input
            x = torch.cat([x, self.tok_embeddings(tokens[:, : t - 1])], dim=1)
        return self.tok_dropout(x)

    # ---- full-sequence passes -------------------------------------------------------------------------------
    def forward(
        self,
        tokens: torch.Tensor,
        labels: torch.Tensor,
        *,
        feature_depth: int | None = None,
        class_drop: bool | None = None,
    ) -> GPTOutput:
        """tokens: codes of cells 0..T-1 [B, T] (T <= N; cell T-1 is only a target); labels [B].
        Returns logits [B, T, V] where position p predicts cell p. Label dropout (CFG) applies when class_drop
        is True, or in training mode when it is None."""
        if feature_depth is not None and not 1 <= feature_depth <= self.cfg.layers:
            raise ValueError(f"feature_depth must be in 1..{self.cfg.layers}, got {feature_depth}")
        h = self._embed(tokens, labels, class_drop)
        rope = self.rope(h.device)[: h.shape[1]]
        feature = None
        for depth, layer in enumerate(self.layers, start=1):
            h = layer(h, rope)
            if depth == feature_depth:
                feature = h
        final = self.norm(h)
        return GPTOutput(logits=self.output(final).float(), feature=feature, final_hidden=final)

    def forward_features(
        self, tokens: torch.Tensor, labels: torch.Tensor, depth: int, *, class_drop: bool | None = None
    ) -> torch.Tensor:
        """The residual stream after block `depth` (1-indexed) [B, T, D]; later blocks are never run."""
        if not 1 <= depth <= self.cfg.layers:
            raise ValueError(f"depth must be in 1..{self.cfg.layers}, got {depth}")
        h = self._embed(tokens, labels, class_drop)
        rope = self.rope(h.device)[: h.shape[1]]
        for layer in self.layers[:depth]:
            h = layer(h, rope)
        return h

    # ---- cached decoding ------------------------------------------------------------------------------------
    def setup_cache(self, batch: int, dtype: torch.dtype, max_len: int | None = None) -> None:
        """Allocate the static KV cache for `batch` sequences of up to max_len positions (default N)."""
        max_len = max_len or self.cfg.seq_len
        device = self.output.weight.device
        for layer in self.layers:
            layer.attention.kv_cache = KVCache(batch, self.cfg.heads, max_len, self.cfg.head_dim, dtype, device)
        # Row p: which cache slots position p may attend to (slots not yet written are masked out too).
        self._cache_mask = torch.tril(torch.ones(max_len, max_len, dtype=torch.bool, device=device))

    def free_cache(self) -> None:
        for layer in self.layers:
            layer.attention.kv_cache = None
            layer.feed_forward.drop_stacked()
        self._cache_mask = None

    def forward_cached(self, x: torch.Tensor, input_pos: torch.Tensor, filled: int | None = None) -> torch.Tensor:
        """Run embeddings x [B, T, D] at sequence positions input_pos [T] against the cache; logits [B, T, V].
        filled: how many cache slots are written once these positions are (max(input_pos) + 1); given, the
        attention reads only those (eager decoding), otherwise the whole cache under a mask (static shapes,
        for torch.compile / CUDA graphs). Both give the same result."""
        assert self._cache_mask is not None, "call setup_cache() first"
        mask = self._cache_mask[input_pos][None, None]
        rope = self.rope(x.device)[input_pos]
        h = self.tok_dropout(x)
        for layer in self.layers:
            h = layer(h, rope, input_pos, mask, filled)
        return self.output(self.norm(h)).float()

    def prefill(self, labels: torch.Tensor) -> torch.Tensor:
        """Feed the class position (0); returns the logits for cell 0 [B, V]."""
        pos = torch.zeros(1, dtype=torch.long, device=labels.device)
        return self.forward_cached(self.cls_embedding(labels)[:, None], pos, filled=1)[:, -1]

    def decode_step(self, tokens: torch.Tensor, input_pos: torch.Tensor, filled: int | None = None) -> torch.Tensor:
        """Feed cell codes tokens [B, 1] at position input_pos [1] (= cell index + 1); logits [B, V]. filled
        (= input_pos + 1): attend only to the written slots (see forward_cached)."""
        return self.forward_cached(self.tok_embeddings(tokens), input_pos, filled)[:, -1]


COMPILE_BACKEND = "inductor"  # tests switch this to "aot_eager" to check graph capture without a C++ build


def compile_blocks(blocks: Sequence[nn.Module]) -> None:
    """torch.compile each block's forward in place (`Module.compile`): names, parameters and the state dict stay
    as they are, and blocks of one shape share one compiled graph (what FSDP2 runs per block too)."""
    for block in blocks:
        block.compile(backend=COMPILE_BACKEND)


EMBEDDING_PARAMETERS = ("cls_embedding.", "tok_embeddings.", "output.")  # the vocabulary- and class-sized tables


def parameter_counts(cfg: GPTConfig) -> dict[str, int]:
    """Total and non-embedding parameter counts of the GPT a config builds (token and class embeddings and the
    output head excluded: the usual measure of a transformer's size). Built on the meta device: no memory."""
    with torch.device("meta"):
        model = GPT(cfg)
    total = sum(p.numel() for p in model.parameters())
    embedding = sum(p.numel() for name, p in model.named_parameters() if name.startswith(EMBEDDING_PARAMETERS))
    return {"total": total, "non_embedding": total - embedding}
