"""Class-conditional generation: static KV cache, classifier-free guidance in one batch, seeded sampling."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from mirai_cli.config.auto import resolve_compile
from mirai_cli.config.schema import section_defaults
from mirai_cli.gpt import model as gpt_model
from mirai_cli.gpt.logits import combine_cfg, draw, filter_logits, guidance_scales
from mirai_cli.gpt.model import GPT

SAMPLE = section_defaults("sample")  # the preset's [sample] defaults: the one place they are written


@dataclass
class SampleOptions:
    """How tokens are drawn; the fields and their defaults are the preset's [sample] ones (docs in the schema)."""

    cfg_scale: float = SAMPLE["cfg_scale"]
    cfg_schedule: str = SAMPLE["cfg_schedule"]  # constant | linear | interval (see logits.guidance_scales)
    cfg_interval: float = SAMPLE["cfg_interval"]
    temperature: float = SAMPLE["temperature"]
    top_k: int = SAMPLE["top_k"]
    top_p: float = SAMPLE["top_p"]
    precision: str = SAMPLE["precision"]  # bf16 autocast on CUDA; the CPU always samples in float32
    weights_dtype: str = SAMPLE["weights_dtype"]  # auto | fp32 | bf16 (config/auto.py); the sampling job applies it
    compile: bool | str = SAMPLE["compile"]  # true | false | auto (on on CUDA); static shapes: see _decode_fn
    use_cache: bool = True  # False recomputes the whole prefix every step (for benchmarks and tests)

    @classmethod
    def from_settings(cls, sample: Any, **overrides: Any) -> SampleOptions:
        """From a preset's `sample` section (pydantic model): every field the two share, then `overrides`."""
        shared = {f.name: getattr(sample, f.name) for f in dataclasses.fields(cls) if hasattr(sample, f.name)}
        return cls(**{**shared, **overrides})


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    return torch.bfloat16 if precision == "bf16" and device.type == "cuda" else None


Step = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]  # (tokens [B, 1], position [1], filled slots)


def _decode_fn(model: GPT, compile: bool) -> Step:
    """Eager: each step attends only to the filled cache slots. Compiled: one graph of static shapes for every
    step (the whole cache under a mask), kept on the model so later batches reuse it."""
    if not compile:
        return model.decode_step
    fn = getattr(model, "_compiled_decode_step", None)
    if fn is None:
        backend = gpt_model.COMPILE_BACKEND
        mode = "reduce-overhead" if model.output.weight.device.type == "cuda" and backend == "inductor" else None
        fn = torch.compile(model.decode_step, backend=backend, mode=mode, fullgraph=True, dynamic=False)
        model._compiled_decode_step = fn
    return lambda tokens, pos, filled: fn(tokens, pos)


def ensure_cache(model: GPT, batch: int, dtype: torch.dtype) -> None:
    """Allocate the KV cache unless one of the right size and dtype is already there (it needs no clearing:
    position p only ever reads slots 0..p, which this generation has just written)."""
    cache = model.layers[0].attention.kv_cache
    if cache is None or cache.k.shape[0] != batch or cache.k.dtype != dtype:
        model.setup_cache(batch, dtype)


@torch.no_grad()
def generate(
    model: GPT,
    labels: torch.Tensor,
    options: SampleOptions | None = None,
    *,
    generator: torch.Generator | None = None,
    return_logits: bool = False,
    keep_cache: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Sample N = h*w codes per label: LongTensor [B, N] in raster order.

    labels [B] on the model's device. With return_logits, also the guided logits used at every step [B, N, V]
    (before temperature/top-k/top-p). keep_cache leaves the KV cache allocated for the next call of the same
    batch size (free it with model.free_cache())."""
    opts = options or SampleOptions()
    scales = guidance_scales(opts.cfg_scale, opts.cfg_schedule, model.cfg.seq_len, opts.cfg_interval)
    cfg = any(s != 1.0 for s in scales)
    return _generate(model, labels, scales, cfg, opts, generator, return_logits, keep_cache)


def _generate(
    model: GPT,
    labels: torch.Tensor,
    scales: list[float],
    cfg: bool,
    opts: SampleOptions,
    generator: torch.Generator | None,
    return_logits: bool,
    keep_cache: bool,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    n = model.cfg.seq_len
    if labels.dim() != 1 or labels.numel() == 0:
        raise ValueError("labels must be a non-empty 1-D tensor")
    if int(labels.min()) < 0 or int(labels.max()) >= model.cfg.num_classes:
        raise ValueError(f"labels must be in 0..{model.cfg.num_classes - 1}")
    was_training = model.training
    model.eval()
    device = labels.device
    b = labels.shape[0]
    # Conditional half first, null-class half second, in one batch.
    cond = torch.cat([labels, torch.full_like(labels, model.cfg.num_classes)]) if cfg else labels
    amp = autocast_dtype(device, opts.precision)
    amp_ctx = torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    tokens = torch.zeros(b, n, dtype=torch.long, device=device)
    logits_seen = [] if return_logits else None
    positions = torch.arange(n, device=device)

    def pick(step_logits: torch.Tensor, i: int) -> None:
        guided = combine_cfg(step_logits, scales[i]) if cfg else step_logits
        if logits_seen is not None:
            logits_seen.append(guided.float().clone())  # CUDA-graph outputs are overwritten by the next step
        filtered = filter_logits(guided, opts.temperature, opts.top_k, opts.top_p)
        tokens[:, i] = draw(filtered, generator)

    try:
        with amp_ctx:
            if opts.use_cache:
                ensure_cache(model, cond.shape[0], amp or model.output.weight.dtype)
                step = _decode_fn(model, resolve_compile(opts.compile, device.type))
                pick(model.prefill(cond), 0)
                for i in range(1, n):
                    prev = tokens[:, i - 1 : i]
                    # Cell i-1 enters at sequence position i (slots 0..i are then filled); it predicts cell i.
                    pick(step(torch.cat([prev, prev]) if cfg else prev, positions[i : i + 1], i + 1), i)
            else:
                for i in range(n):
                    seq = tokens[:, : i + 1]  # cell i is only a target here: its value is never read
                    out = model(torch.cat([seq, seq]) if cfg else seq, cond, class_drop=False)
                    pick(out.logits[:, i], i)
    finally:
        if not keep_cache:
            model.free_cache()
        model.train(was_training)
    if logits_seen is not None:
        return tokens, torch.stack(logits_seen, dim=1)
    return tokens
