"""Cost of a training step: baseline vs Mirai-E vs Mirai-I (cached / online teacher), tokens/s and peak memory.

    python bench/train_bench.py                 # tiny preset shape and GPT-B shape (batch 2), CPU
    python bench/train_bench.py --shapes tiny --steps 20

Each variant runs the real TrainStep (GPT + foresight heads), teacher, AdamW step and EMA update.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from mirai_cli.config import load_config
from mirai_cli.engine.ema import EMA
from mirai_cli.engine.optim import build_adamw
from mirai_cli.engine.run import gpt_config_from
from mirai_cli.engine.step import TrainStep
from mirai_cli.foresight.objective import ForesightObjective
from mirai_cli.foresight.teachers import EMATeacher, build_encoder
from mirai_cli.gpt.model import GPT
from mirai_cli.runtime import autocast, resolve_precision

SHAPES = {
    "tiny": (["tiny"], [], 64),
    "gpt-b": (["llamagen-b"], [], 2),
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_variant(shape: str, variant: str, steps: int, device: torch.device) -> dict:
    presets, sets, batch = SHAPES[shape]
    source = {"baseline": "none", "mirai-e": "ema", "mirai-i-cached": "encoder", "mirai-i-online": "encoder"}[variant]
    config = load_config(presets, sets + [f"foresight.source={source}"] +
                         (["foresight.k=3"] if source == "ema" else ["foresight.k=1"]))
    torch.manual_seed(0)
    cfg = gpt_config_from(config)
    gpt = GPT(cfg).to(device)
    fc = config.foresight
    objective, teacher_fn = None, None
    n = cfg.seq_len
    if source == "ema":
        ema = EMA(gpt, 0.9999)
        teacher = EMATeacher(ema.module, fc.depth, "internal")
        teacher_fn = lambda tokens, labels: teacher(tokens, labels)  # noqa: E731
        objective = ForesightObjective.from_layout(cfg.grid, cfg.dim, cfg.dim, "sequence", "2d", 3,
                                                   hidden_dim=fc.projector_dim).to(device)
    else:
        ema = EMA(gpt, 0.9999)
    if source == "encoder":
        name = "efficientnet-lite0" if shape == "tiny" else "dinov2-vit-b"
        encoder = build_encoder(name, cfg.grid, pretrained=False, resolution=128 if shape == "tiny" else 224,
                                device=device)
        dim = encoder.teacher_dim
        objective = ForesightObjective.from_layout(cfg.grid, cfg.dim, dim, "cells", "2d", 1,
                                                   hidden_dim=fc.projector_dim).to(device)
        if variant == "mirai-i-cached":
            # What the cache hands over: float16 features of the batch, read from memory.
            cache = torch.randn(batch * 4, n, dim).half()
            teacher_fn = lambda tokens, labels: cache[:batch].float()  # noqa: E731
        else:
            size = config.data.image_size
            pixels = torch.rand(batch, 3, size, size)
            teacher_fn = lambda tokens, labels: encoder(pixels)  # noqa: E731
    module = TrainStep(gpt, objective, fc.depth, "internal")
    opt = build_adamw(module.named_parameters(), 1e-4, (0.9, 0.95), 0.05, device)
    precision = resolve_precision("bf16", device)
    weights = [2.0] * (objective.num_heads if objective else 0)
    tokens = torch.randint(0, cfg.vocab_size, (batch, n), device=device)
    labels = torch.randint(0, cfg.num_classes, (batch,), device=device)
    times, teacher_times = [], []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        with autocast(device, precision):
            target = teacher_fn(tokens, labels) if teacher_fn else None
        t1 = time.perf_counter()
        with autocast(device, precision):
            losses = module(tokens, labels, target, weights)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.update(gpt)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:  # warm-up steps excluded
            times.append(time.perf_counter() - t0)
            teacher_times.append(t1 - t0)
    step = float(np.median(times))
    return {"shape": shape, "variant": variant, "precision": precision, "batch": batch, "step_s": step,
            "teacher_s": float(np.median(teacher_times)), "tokens_per_s": batch * n / step,
            "params_M": sum(p.numel() for p in gpt.parameters()) / 1e6,
            "heads_M": sum(p.numel() for p in objective.parameters()) / 1e6 if objective else 0.0,
            "peak_rss_MB": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shapes", nargs="+", default=["tiny", "gpt-b"], choices=list(SHAPES))
    parser.add_argument("--variants", nargs="+", default=["baseline", "mirai-e", "mirai-i-cached", "mirai-i-online"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'shape':6} {'variant':15} {'prec':5} {'batch':>5} {'step s':>8} {'teacher s':>9} {'tok/s':>9} "
          f"{'x base':>7} {'GPT M':>7} {'heads M':>7} {'peak RSS MB':>11}")
    for shape in args.shapes:
        base = None
        for variant in args.variants:
            r = run_variant(shape, variant, args.steps, device)
            base = base or r["step_s"]
            print(f"{r['shape']:6} {r['variant']:15} {r['precision']:5} {r['batch']:5d} {r['step_s']:8.3f} "
                  f"{r['teacher_s']:9.3f} {r['tokens_per_s']:9.0f} {r['step_s'] / base:7.2f} {r['params_M']:7.1f} "
                  f"{r['heads_M']:7.1f} {r['peak_rss_MB']:11.0f}", flush=True)


if __name__ == "__main__":
    main()
