"""Cost of a training step: baseline vs Mirai-E vs Mirai-I (cached / online teacher), as ratios measured in
one run: every round times one step of each variant in turn (A B C A B C ...), so machine load hits all alike.

    python bench/train_bench.py                          # tiny preset shape and GPT-B shape (batch 2), CPU
    python bench/train_bench.py --shapes tiny --steps 20
    python bench/train_bench.py --variants baseline mirai-e mirai-e-bf16t   # cost of fp32 targets
    python bench/train_bench.py --variants baseline mirai-e mirai-e-perhead  # gain of the fused projectors
    python bench/train_bench.py --pixels        # online Mirai-I host input: ten crops vs one, 1 vs N threads
    python bench/train_bench.py --official      # our Mirai-E step (build_run + train_step) vs the official-style
                                                # step (bench/official_mirai.py), interleaved A/B at two shapes

Each variant runs the real TrainStep (GPT + foresight heads), its teacher, backward, AdamW step and EMA
update. The variants share one GPT, its EMA and one AdamW (parameters without a gradient in a step are not
updated), so the bench holds one model's memory; timing does not depend on the weights' values.
Columns: step = whole step; teacher = target computation; fwd / bwd = TrainStep forward / backward;
opt = clip + AdamW + EMA. Medians over the rounds after warm-up.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from bench.official_mirai import OfficialStep, RefConfig
from bench.synthetic import make_token_store
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


# A/B shapes of --official: layers, dim, heads, grid, batch, projector hidden, feature (= teacher) depth.
AB_SHAPES = {
    "issue": dict(layers=8, dim=256, heads=4, grid=16, batch=16, hidden=2048, depth=5),
    "small": dict(layers=4, dim=128, heads=2, grid=8, batch=16, hidden=512, depth=3),
}
VOCAB, CLASSES = 16384, 1000


def engine_run(root, shape: dict, foresight: bool, device: torch.device):
    """Our real training parts (`build_run`) at an A/B shape, on a synthetic store; -> (run, its fixed batch)."""
    from mirai_cli.engine.run import build_run
    from mirai_cli.runtime.distributed import DistEnv

    store = Path(root, "store")
    if not store.exists():
        make_token_store(root, images=64, grid=shape["grid"], codebook=VOCAB, classes=CLASSES,
                         image_size=16 * shape["grid"])
    sets = [f"data.store={store}", f"data.image_size={16 * shape['grid']}", "model.size=custom",
            f"model.layers={shape['layers']}", f"model.dim={shape['dim']}", f"model.heads={shape['heads']}",
            f"model.num_classes={CLASSES}", f"train.global_batch_size={shape['batch']}", "train.duration=100000",
            "train.ckpt_every=100000", "train.precision=bf16", f"train.run_dir={root}/run-{int(foresight)}",
            f"foresight.depth={shape['depth']}", f"foresight.projector_dim={shape['hidden']}", "foresight.warmup=0",
            "foresight.k=3", "foresight.ema_decay=0.9999", "train.ema_decay=0.9999"]
    config = load_config(["mirai-e" if foresight else "llamagen-b"], sets)
    run = build_run(config, DistEnv(rank=0, world_size=1, local_rank=0, device=device), progress=False)
    return run, [run.reader.to_device(b) for b in run.reader.read(0)]


CLOCK = {"kind": "wall"}


def clock(device: torch.device) -> float:
    """Wall time (after a device sync), or with --clock cpu this process's CPU time: on a shared CPU the wall
    clock also counts the time other processes hold the cores; CPU time counts only the step's own work (use it
    with --threads 1, where no thread waits on another)."""
    wall = sync(device)
    return time.process_time() if CLOCK["kind"] == "cpu" else wall


def ratio_interval(a: np.ndarray, b: np.ndarray, n: int = 4000, seed: int = 0) -> tuple[float, float, float]:
    """median(a) / median(b) and its 95% bootstrap interval (rounds resampled in pairs: one round's load hits
    both alike)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), (n, len(a)))
    boot = np.median(a[idx], axis=1) / np.median(b[idx], axis=1)
    return float(np.median(a) / np.median(b)), float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))


def official_ab(name: str, rounds: int, warmup: int, device: torch.device, baselines: bool) -> dict:
    """Interleaved A/B (A B A B ...) of our Mirai-E step against the official-style one at one shape; with
    `baselines`, each side's baseline step too (for Mirai-E / baseline on both sides)."""
    from mirai_cli.engine.step import train_step

    shape = AB_SHAPES[name]
    ref = dict(vocab=VOCAB, classes=CLASSES, layers=shape["layers"], dim=shape["dim"], heads=shape["heads"],
               grid=shape["grid"], depth=shape["depth"], hidden=shape["hidden"])
    steps: dict[str, Callable[[int], object]] = {}
    with tempfile.TemporaryDirectory() as root:
        run, batches = engine_run(root, shape, True, device)
        steps["ours mirai-e"] = lambda i, r=run, b=batches: train_step(r, i, b)
        official = OfficialStep(RefConfig(**ref), device)
        codes, labels = batches[0].codes, batches[0].labels
        steps["official mirai-e"] = lambda i: official(codes, labels, run.precision)
        if baselines:
            base_run, base_batches = engine_run(root, shape, False, device)
            steps["ours baseline"] = lambda i: train_step(base_run, i, base_batches)
            official_base = OfficialStep(RefConfig(**{**ref, "num_heads": 0}), device)
            steps["official baseline"] = lambda i: official_base(codes, labels, run.precision)
        times: dict[str, list[float]] = {k: [] for k in steps}
        for r in range(warmup + rounds):
            for key, step in steps.items():
                t0 = clock(device)
                step(r)
                dt = clock(device) - t0
                if r >= warmup:
                    times[key].append(dt)
    t = {k: np.array(v) for k, v in times.items()}
    print(f"\n{name}: {shape['layers']} layers x {shape['dim']}, {shape['grid']}x{shape['grid']} grid, batch "
          f"{shape['batch']}, {run.precision}, K=3 heads of {shape['hidden']}, teacher depth {shape['depth']}; "
          f"{rounds} interleaved rounds after {warmup}")
    for key, v in t.items():
        print(f"  {key:18} median {np.median(v):.4f} s/step")
    rows = {"ours/official mirai-e": ("ours mirai-e", "official mirai-e")}
    if baselines:
        rows |= {"ours/official baseline": ("ours baseline", "official baseline"),
                 "ours mirai-e/baseline": ("ours mirai-e", "ours baseline"),
                 "official mirai-e/baseline": ("official mirai-e", "official baseline")}
    out = {}
    for label, (a, b) in rows.items():
        ratio, lo, hi = ratio_interval(t[a], t[b])
        out[label] = (ratio, lo, hi)
        print(f"  {label:26} {ratio:.3f}  [{lo:.3f}, {hi:.3f}] (95% bootstrap)", flush=True)
    return out


def official_parts(name: str, rounds: int, warmup: int, device: torch.device) -> None:
    """Where the time goes: the Mirai-E step's phases on both sides, interleaved (teacher / student forward +
    loss + backward / clip + AdamW + EMA), timed with our run's parts and the official-style step's."""
    from bench.official_mirai import foresight_losses
    from mirai_cli.engine.parallel import clip_grad_norm
    from mirai_cli.engine.step import teacher_targets
    from mirai_cli.runtime.device import autocast

    shape = AB_SHAPES[name]
    with tempfile.TemporaryDirectory() as root:
        run, batches = engine_run(root, shape, True, device)
    off = OfficialStep(RefConfig(vocab=VOCAB, classes=CLASSES, layers=shape["layers"], dim=shape["dim"],
                                 heads=shape["heads"], grid=shape["grid"], depth=shape["depth"],
                                 hidden=shape["hidden"]), device)
    b = batches[0]
    weights = run.lambdas.weights(0)
    state: dict = {}

    def ours_teacher():
        state["t"] = teacher_targets(run, b)

    def ours_student():
        with autocast(device, run.precision):
            losses = run.model(b.codes, b.labels, state["t"], weights)
        losses["loss"].backward()

    def ours_update():
        clip_grad_norm(run.step_module, 1.0)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        for ema in run.emas.values():
            ema.update(run.gpt)

    def off_teacher():
        with torch.no_grad():
            state["ot"] = off.teacher.features(b.codes[:, :-1], b.labels)

    def off_student():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=run.precision == "bf16"):
            zs, ntp = off.model(b.codes[:, :-1], b.labels, b.codes)
        (ntp + sum(2.0 * h for h in foresight_losses(state["ot"], zs, off.offsets))).backward()

    def off_update():
        torch.nn.utils.clip_grad_norm_(off.model.parameters(), 1.0)
        off.opt.step()
        off.opt.zero_grad(set_to_none=True)
        off.update_ema()
        off.teacher.load_state_dict(off.ema.state_dict())

    phases = {"ours teacher": ours_teacher, "ours fwd+bwd": ours_student, "ours opt+ema": ours_update,
              "official teacher": off_teacher, "official fwd+bwd": off_student, "official opt+ema": off_update}
    times: dict[str, list[float]] = {k: [] for k in phases}
    run.model.train()
    for r in range(warmup + rounds):
        for key, fn in phases.items():
            t0 = clock(device)
            fn()
            if r >= warmup:
                times[key].append(clock(device) - t0)
    print(f"\n{name}: phases, {rounds} interleaved rounds after {warmup}")
    for part in ("teacher", "fwd+bwd", "opt+ema"):
        a, c = np.array(times[f"ours {part}"]), np.array(times[f"official {part}"])
        ratio, lo, hi = ratio_interval(a, c)
        print(f"  {part:8} ours {np.median(a):.4f} s, official {np.median(c):.4f} s: {ratio:.3f} [{lo:.3f}, {hi:.3f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["tiny", "gpt-b"], choices=list(SHAPES))
    parser.add_argument("--variants", nargs="+", default=["baseline", "mirai-e", "mirai-i-cached", "mirai-i-online"],
                        choices=list(VARIANTS), help="the first one is the reference of the ratio column")
    parser.add_argument("--steps", type=int, default=5, help="timed rounds (one step of every variant each)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pixels", action="store_true", help="only the online Mirai-I host-input bench")
    parser.add_argument("--official", nargs="*", choices=list(AB_SHAPES), default=None,
                        help="A/B of our Mirai-E step against the official-style one (shapes: default both)")
    parser.add_argument("--baselines", action="store_true", help="--official: also time both sides' baseline step")
    parser.add_argument("--parts", action="store_true", help="--official: time the step's phases instead")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="--official: wall time, or the process's CPU time (a shared CPU; with --threads 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.official is not None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        CLOCK["kind"] = args.clock if device.type == "cpu" else "wall"
        print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, {CLOCK['kind']} clock")
        for name in args.official or list(AB_SHAPES):
            if args.parts:
                official_parts(name, args.steps, args.warmup, device)
            else:
                official_ab(name, args.steps, args.warmup, device, args.baselines)
        return
    if args.pixels:
        bench_online_pixels(64, 32, 256, max(2, args.threads), max(3, args.steps))
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    for shape in args.shapes:
        run_shape(shape, args.variants, args.steps, args.warmup, device)


if __name__ == "__main__":
    main()
