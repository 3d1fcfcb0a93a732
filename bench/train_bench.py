"""Cost of a training step: baseline vs Mirai-E vs Mirai-I (cached / online teacher), as ratios measured in
one run: every round times one step of each variant in turn (A B C A B C ...), so machine load hits all alike.

    python bench/train_bench.py                          # tiny preset shape and GPT-B shape (batch 2), CPU
    python bench/train_bench.py --shapes tiny --steps 20
    python bench/train_bench.py --variants baseline mirai-e mirai-e-bf16t   # cost of fp32 targets

Each variant runs the real TrainStep (GPT + foresight heads), its teacher, backward, AdamW step and EMA
update. The variants share one GPT, its EMA and one AdamW (parameters without a gradient in a step are not
updated), so the bench holds one model's memory; timing does not depend on the weights' values.
Columns: step = whole step; teacher = target computation; fwd / bwd = TrainStep forward / backward;
opt = clip + AdamW + EMA. Medians over the rounds after warm-up.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from mirai_cli.config import load_config
from mirai_cli.engine.ema import EMA
from mirai_cli.engine.optim import build_adamw
from mirai_cli.engine.run import gpt_config_from
from mirai_cli.engine.step import TrainStep
from mirai_cli.foresight.objective import ForesightObjective
from mirai_cli.foresight.teachers import EMATeacher, build_encoder
from mirai_cli.foresight.teachers.targets import TargetOptions
from mirai_cli.gpt.model import GPT
from mirai_cli.runtime import autocast, resolve_precision

# shape -> (presets, overrides, batch, Mirai-I encoder, its resolution)
SHAPES = {
    "tiny": (["tiny"], [], 32, "efficientnet-lite1", 128),
    "gpt-b": (["llamagen-b"], [], 2, "dinov2-vit-b", 224),
}
# variant -> (teacher, teacher precision); "-bf16t" = bf16 targets (the opt-in), otherwise fp32 (the default)
VARIANTS = {
    "baseline": ("none", "fp32"),
    "mirai-e": ("ema", "fp32"),
    "mirai-e-bf16t": ("ema", "bf16"),
    "mirai-i-cached": ("cached", "fp32"),
    "mirai-i-online": ("online", "fp32"),
    "mirai-i-online-bf16t": ("online", "bf16"),
}
PHASES = ("step", "teacher", "fwd", "bwd", "opt")


@dataclass
class Variant:
    name: str
    module: TrainStep
    teacher: Optional[Callable[[], torch.Tensor]]
    weights: list[float]
    heads_m: float
    times: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})


def build_variants(shape: str, names: list[str], device: torch.device):
    presets, sets, batch, enc_name, enc_res = SHAPES[shape]
    config = load_config(presets, sets)
    torch.manual_seed(0)
    cfg = gpt_config_from(config)
    gpt = GPT(cfg).to(device)
    ema = EMA(gpt, 0.9999)  # sampling EMA, also the Mirai-E teacher (one EMA when the decays agree)
    fc = config.foresight
    tokens = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len), device=device)
    labels = torch.randint(0, cfg.num_classes, (batch,), device=device)
    pixels = torch.rand(batch, 3, config.data.image_size, config.data.image_size, device=device)
    variants, encoders = [], {}
    for name in names:
        kind, precision = VARIANTS[name]
        objective, teacher = None, None
        if kind == "ema":
            ema_teacher = EMATeacher(ema.module, fc.depth, "internal", precision)
            teacher = lambda t=ema_teacher: t(tokens, labels)  # noqa: E731
            objective = ForesightObjective.from_layout(cfg.grid, cfg.dim, cfg.dim, "sequence", "2d", 3,
                                                       hidden_dim=fc.projector_dim)
        elif kind in ("cached", "online"):
            key = (enc_name, precision)
            if key not in encoders:
                encoders[key] = build_encoder(enc_name, cfg.grid, pretrained=False, resolution=enc_res, device=device,
                                              options=TargetOptions(precision=precision))
            encoder = encoders[key]
            if kind == "cached":  # what the cache hands over: float16 features of the batch, read from memory
                cache = torch.randn(batch, cfg.grid[0] * cfg.grid[1], encoder.teacher_dim).half()
                teacher = lambda c=cache: c.to(device, torch.float32)  # noqa: E731
            else:
                teacher = lambda e=encoder: e(pixels)  # noqa: E731
            objective = ForesightObjective.from_layout(cfg.grid, cfg.dim, encoder.teacher_dim, "cells", "2d", 1,
                                                       hidden_dim=fc.projector_dim)
        module = TrainStep(gpt, objective.to(device) if objective else None, fc.depth, "internal")
        heads_m = sum(p.numel() for p in objective.parameters()) / 1e6 if objective else 0.0
        variants.append(Variant(name, module, teacher, [2.0] * (objective.num_heads if objective else 0), heads_m))
    params = {id(p): (n, p) for v in variants for n, p in v.module.named_parameters()}
    opt = build_adamw(list(params.values()), 1e-4, (0.9, 0.95), 0.05, device)
    return gpt, ema, opt, tokens, labels, variants


def sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def time_step(v: Variant, gpt, ema, opt, tokens, labels, precision: str, device: torch.device) -> dict[str, float]:
    t0 = sync(device)
    target = v.teacher() if v.teacher else None
    t1 = sync(device)
    with autocast(device, precision):
        losses = v.module(tokens, labels, target, v.weights)
    t2 = sync(device)
    losses["loss"].backward()
    t3 = sync(device)
    torch.nn.utils.clip_grad_norm_(v.module.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    ema.update(gpt)
    t4 = sync(device)
    return {"step": t4 - t0, "teacher": t1 - t0, "fwd": t2 - t1, "bwd": t3 - t2, "opt": t4 - t3}


def run_shape(shape: str, names: list[str], steps: int, warmup: int, device: torch.device) -> None:
    gpt, ema, opt, tokens, labels, variants = build_variants(shape, names, device)
    precision = resolve_precision("bf16", device)
    for r in range(warmup + steps):
        for v in variants:
            t = time_step(v, gpt, ema, opt, tokens, labels, precision, device)
            if r >= warmup:
                for k in PHASES:
                    v.times[k].append(t[k])
    n = tokens.numel()
    base = float(np.median(variants[0].times["step"]))
    print(f"\n{shape}: batch {tokens.shape[0]} x {tokens.shape[1]} tokens, student {precision}, "
          f"GPT {sum(p.numel() for p in gpt.parameters()) / 1e6:.1f} M, {steps} rounds")
    print(f"{'variant':20} {'step s':>8} {'x ' + variants[0].name:>11} {'teacher':>8} {'fwd':>8} {'bwd':>8} "
          f"{'opt':>8} {'tok/s':>8} {'heads M':>7}")
    for v in variants:
        med = {k: float(np.median(v.times[k])) for k in PHASES}
        print(f"{v.name:20} {med['step']:8.3f} {med['step'] / base:11.3f} {med['teacher']:8.3f} {med['fwd']:8.3f} "
              f"{med['bwd']:8.3f} {med['opt']:8.3f} {n / med['step']:8.0f} {v.heads_m:7.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["tiny", "gpt-b"], choices=list(SHAPES))
    parser.add_argument("--variants", nargs="+", default=["baseline", "mirai-e", "mirai-i-cached", "mirai-i-online"],
                        choices=list(VARIANTS), help="the first one is the reference of the ratio column")
    parser.add_argument("--steps", type=int, default=5, help="timed rounds (one step of every variant each)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    for shape in args.shapes:
        run_shape(shape, args.variants, args.steps, args.warmup, device)


if __name__ == "__main__":
    main()
