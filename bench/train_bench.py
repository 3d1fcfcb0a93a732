"""Cost of a training step: baseline vs Mirai-E vs Mirai-I (cached / online teacher), as ratios measured in
one run: every round times one step of each variant in turn (A B C A B C ...), so machine load hits all alike.

    python bench/train_bench.py                          # tiny preset shape and GPT-B shape (batch 2), CPU
    python bench/train_bench.py --shapes tiny --steps 20
    python bench/train_bench.py --variants baseline mirai-e mirai-e-bf16t   # cost of fp32 targets
    python bench/train_bench.py --variants baseline mirai-e mirai-e-perhead  # gain of the fused projectors
    python bench/train_bench.py --pixels        # online Mirai-I host input: ten crops vs one, 1 vs N threads

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
from torch import nn

from mirai_cli.config import load_config
from mirai_cli.engine.ema import EMA
from mirai_cli.engine.optim import build_adamw
from mirai_cli.engine.run import gpt_config_from
from mirai_cli.engine.step import TrainStep
from mirai_cli.foresight.layouts import aligned_pairs
from mirai_cli.foresight.loss import foresight_losses
from mirai_cli.foresight.objective import ForesightObjective
from mirai_cli.foresight.projector import Projector
from mirai_cli.foresight.teachers import EMATeacher, build_encoder
from mirai_cli.foresight.teachers.targets import TargetOptions
from mirai_cli.gpt.model import GPT
from mirai_cli.runtime.device import autocast, resolve_precision

# shape -> (presets, overrides, batch, Mirai-I encoder, its resolution)
SHAPES = {
    "tiny": (["tiny"], [], 32, "efficientnet-lite1", 128),
    "gpt-b": (["llamagen-b"], [], 2, "dinov2-vit-b", 224),
}
# variant -> (teacher, teacher precision); "-bf16t" = bf16 targets (the opt-in), otherwise fp32 (the default);
# "-perhead" = K separate projector MLPs, each on its own positions (the layout before the fusion)
VARIANTS = {
    "baseline": ("none", "fp32"),
    "mirai-e": ("ema", "fp32"),
    "mirai-e-bf16t": ("ema", "bf16"),
    "mirai-e-perhead": ("ema", "fp32"),
    "mirai-i-cached": ("cached", "fp32"),
    "mirai-i-cached-perhead": ("cached", "fp32"),
    "mirai-i-online": ("online", "fp32"),
    "mirai-i-online-bf16t": ("online", "bf16"),
}


class PerHeadObjective(ForesightObjective):
    """The reference layout: one Projector per head, each run on its own positions."""

    def __init__(self, heads, student_dim, teacher_dim, hidden_dim):
        super().__init__(heads, student_dim, teacher_dim, hidden_dim)
        self.per_head = nn.ModuleList(Projector(student_dim, teacher_dim, hidden_dim) for _ in heads)
        del self.projectors
        self.pairs = [(h.student_index, h.teacher_index) for h in heads]

    @property
    def num_heads(self) -> int:
        return len(self.per_head)

    def forward(self, student, teacher, weights):
        preds = [p(student.index_select(1, s.to(student.device))) for p, (s, _) in zip(self.per_head, self.pairs)]
        targets = [teacher.detach().index_select(1, t.to(teacher.device)) for _, t in self.pairs]
        return foresight_losses(preds, targets, weights)


def make_objective(name: str, grid, student_dim: int, teacher_dim: int, space: str, k: int, hidden: int):
    pairs = aligned_pairs(grid, "2d", k, teacher_space=space)
    cls = PerHeadObjective if name.endswith("-perhead") else ForesightObjective
    return cls(pairs, student_dim, teacher_dim, hidden)
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
            ema_teacher = EMATeacher(ema, fc.depth, "internal", TargetOptions(precision=precision))
            teacher = lambda t=ema_teacher: t(tokens, labels)  # noqa: E731
            objective = make_objective(name, cfg.grid, cfg.dim, cfg.dim, "sequence", 3, fc.projector_dim)
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
            objective = make_objective(name, cfg.grid, cfg.dim, encoder.teacher_dim, "cells", 1, fc.projector_dim)
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


def bench_online_pixels(n_images: int, batch: int, size: int, workers: int, rounds: int) -> None:
    """Host time per batch of the online Mirai-I teacher's input (decode, resize, crop) on JPEGs shaped like
    ImageNet's (500x375) with ten-crop at `size` px: every crop then one (before), one crop alone, threads."""
    import tempfile
    from pathlib import Path
    from types import SimpleNamespace

    from PIL import Image

    from mirai_cli.data.sources import open_source
    from mirai_cli.foresight.teachers.store_pixels import StorePixels

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n_images):
            folder = Path(tmp, f"c{i % 4}")
            folder.mkdir(exist_ok=True)
            noise = rng.integers(0, 256, (47, 63, 3), dtype=np.uint8)  # smooth-ish content, JPEG-sized file
            Image.fromarray(noise).resize((500, 375), Image.BICUBIC).save(folder / f"{i}.jpg", quality=90)
        src = open_source(tmp)
        store = SimpleNamespace(path=tmp, source_index=np.arange(len(src)), labels=src.labels, manifest={
            "image_size": size, "crop_mode": "tencrop", "source": {"spec": tmp, "split": "train", "count": len(src)}})
        variants = {
            "ten crops, keep one": lambda p, i, c: torch.from_numpy(np.stack([p.entry_crops(j)[k] for j, k in zip(i, c)])),
            "one crop": lambda p, i, c: p.get_uint8(i, c),
        }
        pixels = {1: StorePixels(store, workers=1), workers: StorePixels(store, workers=workers)}
        runs = [(name, w) for name in variants for w in ([1] if name.startswith("ten") else sorted(pixels))]
        times: dict = {r: [] for r in runs}
        for _ in range(rounds):  # interleaved rounds: load hits every variant alike
            idx = rng.integers(0, n_images, batch)
            crops = rng.integers(0, 10, batch)
            for name, w in runs:
                t0 = time.perf_counter()
                variants[name](pixels[w], idx, crops)
                times[(name, w)].append(time.perf_counter() - t0)
        print(f"\nonline Mirai-I input: {batch} images/batch, 500x375 JPEG, tencrop at {size} px, {rounds} rounds")
        base = float(np.median(times[runs[0]]))
        for name, w in runs:
            med = float(np.median(times[(name, w)]))
            print(f"{name:22} threads {w}: {med:7.3f} s/batch  x{med / base:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["tiny", "gpt-b"], choices=list(SHAPES))
    parser.add_argument("--variants", nargs="+", default=["baseline", "mirai-e", "mirai-i-cached", "mirai-i-online"],
                        choices=list(VARIANTS), help="the first one is the reference of the ratio column")
    parser.add_argument("--steps", type=int, default=5, help="timed rounds (one step of every variant each)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pixels", action="store_true", help="only the online Mirai-I host-input bench")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.pixels:
        bench_online_pixels(64, 32, 256, max(2, args.threads), max(3, args.steps))
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    for shape in args.shapes:
        run_shape(shape, args.variants, args.steps, args.warmup, device)


if __name__ == "__main__":
    main()
