"""Sampling speed: our decode step against a LlamaGen-style `generate()` step, and against the memory bound.

The LlamaGen-style step is re-derived here from LlamaGen's public `generate()` (same weights, our modules'
parameters): a static KV cache of 1 + N slots attended in full under a causal mask, keys and values repeated per
head (`repeat_interleave`), queries and keys rotated one after the other, the CFG halves combined, temperature,
top-k/top-p filtering, softmax and a multinomial draw. Ours: `GPT.decode_step` attending only the filled slots,
then `generate`'s own CFG / filtering / draw.

Printed (JSON lines, then a summary):
- per-step time of both at prefix positions 1, 64, 128, 192, 255, measured alternately (A B A B ...) so that the
  load of a shared machine hits both alike; the whole-image time integrates them over the N steps;
- the ratio LlamaGen-style / ours (the target is >= 2 at GPT-B, batch 8, CFG);
- the memory bound of one step: bytes of the weights read per step / the read bandwidth measured in the same
  loop (a sum over a 400 MB tensor), and the FLOP rate the step reaches;
- with --check-tokens, whole-image generation of the tiny case both ways: the tokens must be identical (fp32).

    python bench/sample_bench.py [--case GPT-B] [--batch 8] [--threads 2] [--rounds 3] [--check-tokens]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from functools import partial

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning threads make small kernels crawl under load

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from mirai_cli.gpt import GPT, GPTConfig  # noqa: E402
from mirai_cli.gpt.generate import SampleOptions, generate  # noqa: E402
from mirai_cli.gpt.logits import combine_cfg, draw, filter_logits  # noqa: E402
from mirai_cli.gpt.rope import apply_rope  # noqa: E402

CASES = {
    "tiny": {"vocab_size": 512, "num_classes": 10, "layers": 4, "dim": 128, "heads": 4, "grid": (8, 8),
             "multiple_of": 64},
    "GPT-B": {"vocab_size": 16384, "num_classes": 1000, "layers": 12, "dim": 768, "heads": 12, "grid": (16, 16)},
}


# ---- LlamaGen-style generation (re-derived) --------------------------------------------------------------------
class LlamaGenStyle:
    """LlamaGen's cached decoding on our model's weights: full-length cache, mask, per-head repeat."""

    def __init__(self, model: GPT, rows: int):
        cfg = model.cfg
        self.model, self.max_len = model, cfg.seq_len + 1
        shape = (rows, cfg.heads, self.max_len, cfg.head_dim)
        self.k = [torch.zeros(shape) for _ in model.layers]
        self.v = [torch.zeros(shape) for _ in model.layers]
        self.causal = torch.tril(torch.ones(self.max_len, self.max_len, dtype=torch.bool))

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        m, b = self.model, x.shape[0]
        mask = self.causal[None, None, pos]
        rope = m.rope(x.device)[pos]
        h = x
        for i, layer in enumerate(m.layers):
            att, d = layer.attention, m.cfg.dim
            xn = layer.attention_norm(h)
            q, k, v = att.wqkv(xn).split([d, d, d], dim=-1)
            q, k, v = (y.view(b, 1, att.heads, att.head_dim) for y in (q, k, v))
            q, k = apply_rope(q, rope), apply_rope(k, rope)
            q, k, v = (y.transpose(1, 2) for y in (q, k, v))
            self.k[i][:, :, pos] = k
            self.v[i][:, :, pos] = v
            keys = self.k[i].repeat_interleave(1, dim=1)  # n_head // n_kv_head = 1: still a copy, as LlamaGen
            values = self.v[i].repeat_interleave(1, dim=1)
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, is_causal=False)
            h = h + att.wo(out.transpose(1, 2).contiguous().view(b, 1, d))
            hn = layer.ffn_norm(h)
            ff = layer.feed_forward
            h = h + ff.w2(F.silu(ff.w1(hn)) * ff.w3(hn))
        return m.output(m.norm(h)).float()

    def sample(self, logits: torch.Tensor, cfg_scale: float, generator: torch.Generator) -> torch.Tensor:
        cond, uncond = torch.split(logits, len(logits) // 2, dim=0)
        logits = uncond + (cond - uncond) * cfg_scale
        logits = logits[:, -1, :] / max(1.0, 1e-5)
        logits = filter_logits(logits, 1.0, 0, 1.0)  # top-k 0 and top-p 1: LlamaGen still runs its filter
        return torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)

    def step(self, prev: torch.Tensor, pos: torch.Tensor, cfg_scale: float, generator: torch.Generator):
        x = self.model.tok_embeddings(torch.cat([prev, prev]))
        return self.sample(self.forward(x, pos), cfg_scale, generator)

    @torch.no_grad()
    def generate(self, labels: torch.Tensor, cfg_scale: float, generator: torch.Generator) -> torch.Tensor:
        m = self.model
        cond = torch.cat([labels, torch.full_like(labels, m.cfg.num_classes)])
        pos0 = torch.zeros(1, dtype=torch.long)
        tokens = [self.sample(self.forward(m.cls_embedding(cond)[:, None], pos0), cfg_scale, generator)]
        for i in range(1, m.cfg.seq_len):
            tokens.append(self.step(tokens[-1], torch.tensor([i]), cfg_scale, generator))
        return torch.cat(tokens, dim=1)


def ours_step(model: GPT, prev: torch.Tensor, pos: torch.Tensor, cfg_scale: float, generator: torch.Generator):
    logits = model.decode_step(torch.cat([prev, prev]), pos, int(pos) + 1)
    return draw(filter_logits(combine_cfg(logits, cfg_scale)), generator)


# ---- measurements ----------------------------------------------------------------------------------------------
def read_bandwidth(buf: torch.Tensor) -> float:
    t = time.perf_counter()
    buf.sum()
    return buf.numel() * buf.element_size() / (time.perf_counter() - t)


@torch.no_grad()
def step_times(model: GPT, batch: int, cfg_scale: float, rounds: int, weights_dtype: torch.dtype) -> dict:
    """LlamaGen-style on the fp32 model against ours with its weights in `weights_dtype` (fp32 by default)."""
    n = model.cfg.seq_len
    rows = 2 * batch
    lg = LlamaGenStyle(model, rows)
    mine = model if weights_dtype == torch.float32 else copy.deepcopy(model).to(weights_dtype)
    mine.setup_cache(rows, weights_dtype)
    gen = torch.Generator().manual_seed(0)
    prev = torch.randint(0, model.cfg.vocab_size, (batch, 1), generator=gen)
    buf = torch.ones(100_000_000)
    probes = sorted({1, n // 4, n // 2, 3 * n // 4, n - 1})
    times: dict[str, dict[int, list[float]]] = {"llamagen": {p: [] for p in probes}, "ours": {p: [] for p in probes}}
    bandwidth = []
    for r in range(rounds + 1):  # round 0 warms up
        for p in probes:
            pos = torch.tensor([p])
            for name, fn in (("llamagen", lg.step), ("ours", partial(ours_step, mine))):
                t = time.perf_counter()
                fn(prev, pos, cfg_scale, gen)
                if r:
                    times[name][p].append(time.perf_counter() - t)
        bw = read_bandwidth(buf)
        if r:
            bandwidth.append(bw)
    mine.free_cache()
    median = {k: {p: sorted(v)[len(v) // 2] for p, v in d.items()} for k, d in times.items()}
    total = {k: integrate(d, n) for k, d in median.items()}
    return {"probes_ms": {k: {p: round(s * 1000, 1) for p, s in d.items()} for k, d in median.items()},
            "image_s": total, "bandwidth_gb_s": sorted(bandwidth)[len(bandwidth) // 2] / 1e9}


def integrate(per_step: dict[int, float], n: int) -> float:
    """Sum of the per-step time over steps 1..n-1 (linear between probes) plus the prefill (~ step 1)."""
    pts = sorted(per_step.items())
    total = pts[0][1]
    for (a, sa), (b, sb) in zip(pts, pts[1:]):
        total += sum(sa + (sb - sa) * (t - a) / (b - a) for t in range(a, b))
    return total + pts[-1][1]


def weight_bytes_per_step(model: GPT) -> int:
    """Every matrix is read once per step; of the embedding tables only the rows used (negligible)."""
    return sum(p.numel() * p.element_size() for name, p in model.named_parameters() if "embedding" not in name)


@torch.no_grad()
def tokens_identical(batch: int, cfg_scale: float) -> dict:
    torch.manual_seed(0)
    model = GPT(GPTConfig(**CASES["tiny"])).eval()
    model.output.weight.normal_(0, 0.5)
    labels = torch.arange(batch) % model.cfg.num_classes
    ours = generate(model, labels, SampleOptions(cfg_scale=cfg_scale), generator=torch.Generator().manual_seed(5))
    theirs = LlamaGenStyle(model, 2 * batch).generate(labels, cfg_scale, torch.Generator().manual_seed(5))
    return {"bench": "tokens_identical", "case": "tiny", "fp32": True, "identical": bool(torch.equal(ours, theirs)),
            "tokens": ours.numel(), "differ": int((ours != theirs).sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), default="GPT-B")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cfg-scale", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--check-tokens", action="store_true")
    ap.add_argument("--weights-dtype", choices=["fp32", "bf16"], default="fp32",
                    help="ours with bf16 weights (the opt-in; LlamaGen-style stays fp32)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; threads {args.threads}")
    if args.check_tokens:
        print(json.dumps(tokens_identical(args.batch, args.cfg_scale)))
    torch.manual_seed(0)
    model = GPT(GPTConfig(**CASES[args.case])).eval()
    with torch.no_grad():
        model.output.weight.normal_(0, 0.02)
    dtype = torch.bfloat16 if args.weights_dtype == "bf16" else torch.float32
    r = step_times(model, args.batch, args.cfg_scale, args.rounds, dtype)
    wbytes = weight_bytes_per_step(model) // (2 if args.weights_dtype == "bf16" else 1)
    bound_s = wbytes / (r["bandwidth_gb_s"] * 1e9)
    n = model.cfg.seq_len
    ours_step_s = r["image_s"]["ours"] / n
    flops = 2 * weight_bytes_per_step(model) / 4 * 2 * args.batch  # 2 FLOPs per weight per row, 2B rows (CFG)
    out = {"bench": "decode", "case": args.case, "weights": args.weights_dtype, "batch": args.batch, "cfg": args.cfg_scale, "tokens": n,
           "probes_ms": r["probes_ms"], "image_s": {k: round(v, 2) for k, v in r["image_s"].items()},
           "speedup_vs_llamagen_style": round(r["image_s"]["llamagen"] / r["image_s"]["ours"], 2),
           "ours_mean_step_ms": round(ours_step_s * 1000, 1), "weights_mb_per_step": round(wbytes / 1e6, 1),
           "read_bandwidth_gb_s": round(r["bandwidth_gb_s"], 2),
           "memory_bound_step_ms": round(bound_s * 1000, 1),
           "step_over_memory_bound": round(ours_step_s / bound_s, 2),
           "gflop_per_s": round(flops / ours_step_s / 1e9, 1)}
    print(json.dumps(out))
    print(f"{args.case} batch {args.batch} CFG {args.cfg_scale}: ours {out['image_s']['ours']} s/image batch, "
          f"LlamaGen-style {out['image_s']['llamagen']} s -> {out['speedup_vs_llamagen_style']}x; mean step "
          f"{out['ours_mean_step_ms']} ms = {out['step_over_memory_bound']}x the memory bound "
          f"({out['memory_bound_step_ms']} ms at {out['read_bandwidth_gb_s']} GB/s)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    assert math.isfinite(out["speedup_vs_llamagen_style"])


if __name__ == "__main__":
    main()
