"""The GPU check's Python part (run by bench/gpu_check.sh): the REAL engine on a CUDA device, one PASS/FAIL line
per check with its figure, and every figure in a JSON file.

    python3 -m bench.gpu_check [--json PATH]        # GPT-B shapes on CUDA
    GPU_CHECK_CPU=1 python3 -m bench.gpu_check      # tiny shapes on the CPU, seconds: a check of this script

Checks (docs/gpu.md says what each means):
  defaults    the presets' "auto" settings resolved on this device: compile on on CUDA (off on the CPU), sampling
      batch 128 (32), bf16 sampling weights under bf16 decoding (fp32).
  train/<variant>/<eager|compiled>  build_run + the trainer's Prefetcher + train_step, bf16, for the baseline,
      Mirai-E, Mirai-I cached and Mirai-I online (DINOv2-B/14 architecture, random weights): finite losses, step
      time, tokens/s, MFU (6 x non-embedding parameters x tokens/s / peak), peak memory, teacher's share of the
      step; steps 3+ under torch.cuda.set_sync_debug_mode("error") (a host sync fails the check); compiled
      Mirai-E also runs its EMA teacher's blocks compiled.
  resume      the trainer (`train`) checkpoints Mirai-E at step 10, resumes, and its next losses equal an
      uninterrupted run's.
  fsdp        build_run with train.parallel = fsdp on a one-process group (the sharding path): one step, DCP
      save/load, and the dtypes FSDP bf16 must keep: RoPE table and teacher targets reach the model in fp32,
      the EMA teacher computes with fp32 weights.
  sample/tokens  the sampling defaults, fp32: eager and compiled decoding give the same tokens.
  sample/b<N>    the `mirai sample` job (decode, PNGs written by the writer thread, npz) at batch N with the
      default weights dtype and compile: images/s.
  evaluate    FID of those samples against the store's images on the device, random-weight extractor; and the
      validation NLL of the trained checkpoint on the device.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from bench.synthetic import make_token_store

CPU = os.environ.get("GPU_CHECK_CPU") == "1"
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0,
               "RTX 4090": 165.0, "A6000": 155.0}  # bf16 dense
VARIANTS = ("baseline", "mirai-e", "mirai-i-cached", "mirai-i-online")
BUDGET_S = float(os.environ.get("GPU_CHECK_BUDGET_S", "420"))  # checks not begun by then are FAILs "not run"
RESUME_TOLERANCE = 1e-6 if CPU else 2e-3  # relative; GPU kernels with atomics (embedding backward) vary slightly


@dataclass(frozen=True)
class Shape:
    layers: int
    dim: int
    heads: int
    grid: int
    batch: int
    steps: int
    codebook: int
    classes: int
    images: int
    encoder: str
    projector: int
    depth: int
    sample_batches: tuple[int, ...]
    vq: dict


GPU_SHAPE = Shape(12, 768, 12, 16, 64, 20, 16384, 1000, 256, "dinov2-vit-b", 2048, 8, (8, 128), {})
CPU_SHAPE = Shape(2, 64, 2, 4, 8, 4, 64, 4, 16, "dinov2-vit-s", 64, 1, (4,),
                  dict(ch=16, ch_mult=(1, 2), num_res_blocks=1, decoder_num_res_blocks=1, z_channels=8,
                       codebook_size=64, codebook_dim=4, norm_groups=8))


class Report:
    """One line per check, and everything in a JSON list."""

    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []

    def record(self, name: str, ok: bool, figure: str, **data: Any) -> None:
        print(f"{'PASS' if ok else 'FAIL'} {name}: {figure}", flush=True)
        self.checks.append({"check": name, "pass": bool(ok), "figure": figure, **data})

    def run(self, name: str, check: Callable[[], tuple[bool, str, dict]]) -> None:
        try:
            ok, figure, data = check()
        except Exception as exc:  # a crash is this check's FAIL; the others still run
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            ok, figure, data = False, f"error: {last[:300]}", {"traceback": traceback.format_exc()[-3000:]}
        self.record(name, ok, figure, **data)


def sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


@contextlib.contextmanager
def no_host_sync(device: torch.device, on: bool) -> Iterator[None]:
    """Any host sync inside raises (CUDA only; nothing to watch on the CPU)."""
    if device.type != "cuda" or not on:
        yield
        return
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


def peak_memory_gib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


class Workspace:
    """The files every check shares, made on the spot: a random VQ tokenizer, a synthetic store of its shape,
    random DINOv2 weights, and the random-weight evaluation extractor."""

    def __init__(self, root: Path, shape: Shape, device: torch.device) -> None:
        from mirai_cli.tokenizer.checkpoint import save_tokenizer, tokenizer_identity
        from mirai_cli.tokenizer.config import VQConfig
        from mirai_cli.tokenizer.vq_model import VQModel

        self.root, self.shape, self.device = root, shape, device
        torch.manual_seed(0)
        vq_cfg = VQConfig(**shape.vq) if shape.vq else VQConfig.vq16()
        self.image_size = shape.grid * vq_cfg.downsample
        self.tokenizer = save_tokenizer(root / "tokenizer.pt", VQModel(vq_cfg), vq_cfg, {"image_size": self.image_size})
        self.vq_cfg = vq_cfg
        sha = tokenizer_identity(self.tokenizer).weights
        self.store = make_token_store(root, images=shape.images, grid=shape.grid, codebook=shape.codebook,
                                      classes=shape.classes, image_size=self.image_size,
                                      tokenizer={"path": str(self.tokenizer), "sha256": sha})
        self.encoder_weights = self._encoder_weights()

    def _encoder_weights(self) -> Path:
        from safetensors.torch import save_file

        from mirai_cli.foresight.teachers import build_encoder

        grid = self.shape.grid
        encoder = build_encoder(self.shape.encoder, (grid, grid), pretrained=False, resolution=14 * grid)
        path = self.root / "encoder.safetensors"
        save_file({k: v.contiguous() for k, v in encoder.backbone.state_dict().items()}, str(path))
        return path

    def sets(self, variant: str, run_dir: Path, compile: bool = False, **extra: Any) -> list[str]:
        s = self.shape
        values: dict[str, Any] = {
            "data.store": str(self.store), "data.image_size": self.image_size, "data.val_images": 0,
            "model.size": "custom", "model.layers": s.layers, "model.dim": s.dim, "model.heads": s.heads,
            "model.num_classes": s.classes, "tokenizer.checkpoint": str(self.tokenizer),
            "train.global_batch_size": s.batch, "train.duration": 1000, "train.ckpt_every": 1000,
            "train.log_every": 1, "train.precision": "bf16", "train.compile": compile, "train.run_dir": str(run_dir),
            "foresight.warmup": 0, "foresight.projector_dim": s.projector, "foresight.depth": s.depth,
        }
        if self.shape.vq:
            values |= {"tokenizer.size": "custom", **{f"tokenizer.{k}": (list(v) if isinstance(v, tuple) else v)
                                                     for k, v in self.shape.vq.items()}}
        if variant.startswith("mirai-i"):
            values |= {"foresight.source": "encoder", "foresight.encoder": s.encoder, "foresight.k": 1,
                       "foresight.encoder_weights": str(self.encoder_weights),
                       "foresight.encoder_resolution": 14 * s.grid, "foresight.cache_teacher": variant == "mirai-i-cached"}
        values |= extra
        return [f"{k}={_toml(v)}" for k, v in values.items()]

    def config(self, variant: str, run_dir: Path, compile: bool = False, **extra: Any):
        from mirai_cli.config import load_config

        preset = {"baseline": "llamagen-b", "mirai-e": "mirai-e"}.get(variant, "mirai-i")
        return load_config([preset], self.sets(variant, run_dir, compile, **extra))


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def single_env(device: torch.device):
    from mirai_cli.runtime.distributed import DistEnv

    return DistEnv(rank=0, world_size=1, local_rank=0, device=device)


def non_embedding_params(gpt: torch.nn.Module) -> int:
    return sum(p.numel() for n, p in gpt.named_parameters() if "embedding" not in n)


def peak_flops(device: torch.device) -> float | None:
    if os.environ.get("GPU_CHECK_PEAK_TFLOPS"):
        return float(os.environ["GPU_CHECK_PEAK_TFLOPS"]) * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v * 1e12 for k, v in PEAK_TFLOPS.items() if k in name), None)


def check_train(ws: Workspace, variant: str, compile: bool) -> tuple[bool, str, dict]:
    from mirai_cli.engine.prefetch import Prefetcher
    from mirai_cli.engine.run import build_run
    from mirai_cli.engine.step import teacher_targets, train_step

    device, steps = ws.device, ws.shape.steps
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    config = ws.config(variant, ws.root / f"run-{variant}-{int(compile)}", compile)
    run = build_run(config, single_env(device), progress=False)
    warm = min(5, steps // 2)
    outs, times = [], []
    with Prefetcher(run.reader, steps) as data:
        for step in range(steps):
            t0 = sync(device)
            with no_host_sync(device, step >= 2):
                outs.append(train_step(run, step, data.get(step)).losses)
            times.append(sync(device) - t0)
    losses = torch.stack(outs).float().cpu()
    step_s = float(np.median(times[warm:]))
    teacher_s = 0.0
    if run.teacher is not None:
        batch = run.reader.to_device(run.reader.read(0)[0])
        t = []
        for _ in range(3):
            t0 = sync(device)
            teacher_targets(run, batch)
            t.append(sync(device) - t0)
        teacher_s = float(np.median(t))
    tokens_s = run.plan.global_batch * ws.shape.grid ** 2 / step_s
    peak = peak_flops(device)
    mfu = 6 * non_embedding_params(run.gpt) * tokens_s / peak if peak else None
    finite = bool(torch.isfinite(losses).all())
    # Compiled Mirai-E: the teacher's blocks run compiled too (train.compile reaches the EMA teacher).
    teacher_compiled = None if variant != "mirai-e" else all(
        getattr(b, "_compiled_call_impl", None) is not None for b in run.teacher.model.layers[: run.teacher.depth])
    data = {"variant": variant, "compiled": compile, "teacher_compiled": teacher_compiled, "steps": steps, "step_s": round(step_s, 4),
            "first_step_s": round(times[0], 2), "tokens_per_s": round(tokens_s), "mfu": round(mfu, 3) if mfu else None,
            "peak_memory_gib": peak_memory_gib(device), "teacher_share": round(teacher_s / step_s, 3),
            "loss_first": float(losses[0, -1]), "loss_last": float(losses[-1, -1]), "finite": finite,
            "non_embedding_params": non_embedding_params(run.gpt)}
    figure = (f"{step_s * 1000:.1f} ms/step, {tokens_s:,.0f} tok/s, MFU {mfu:.1%}" if mfu else
              f"{step_s * 1000:.1f} ms/step, {tokens_s:,.0f} tok/s") + \
        f", teacher {teacher_s / step_s:.0%} of the step, loss {data['loss_first']:.3f} -> {data['loss_last']:.3f}" + \
        (f", peak {data['peak_memory_gib']} GiB" if device.type == "cuda" else "") + \
        ("" if teacher_compiled is None else f", teacher {'compiled' if teacher_compiled else 'eager'}")
    return finite and teacher_compiled in (None, compile), figure, data


def check_defaults(ws: Workspace) -> tuple[bool, str, dict]:
    """The presets' "auto" settings on this device (config/auto.py): compile on CUDA only, sampling batch 128 on
    CUDA (32 on the CPU), bf16 sampling weights where the decoding runs in bf16."""
    from mirai_cli.config import load_config
    from mirai_cli.config.auto import resolve_compile
    from mirai_cli.sampling.from_config import sample_job_from_config
    from mirai_cli.sampling.job import resolved_job

    config = load_config(["mirai-e"])
    job = resolved_job(sample_job_from_config(config, "any.pt", out_dir=str(ws.root / "defaults")), ws.device)
    got = {"train.compile": resolve_compile(config.train.compile, ws.device.type),
           "sample.compile": job.options.compile, "sample.batch_size": job.batch_size,
           "sample.weights_dtype": job.options.weights_dtype}
    cuda = ws.device.type == "cuda"
    want = {"train.compile": cuda, "sample.compile": cuda, "sample.batch_size": 128 if cuda else 32,
            "sample.weights_dtype": "bf16" if cuda else "fp32"}
    return got == want, ", ".join(f"{k} {v}" for k, v in got.items()) + f" on {ws.device.type}", \
        {"resolved": got, "expected": want}


def metric_losses(run_dir: Path) -> dict[int, float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {int(r["step"]): float(r["loss"]) for r in map(json.loads, lines)}


def check_resume(ws: Workspace) -> tuple[bool, str, dict]:
    from mirai_cli.engine.trainer import train

    end, at = 13, 10
    straight, resumed = ws.root / "resume-straight", ws.root / "resume-cut"
    cfg = lambda d: ws.config("mirai-e", d, False, **{"train.ckpt_every": at})  # noqa: E731
    train(cfg(straight), run_dir=straight, stop_at=end, progress=False)
    train(cfg(resumed), run_dir=resumed, stop_at=at, progress=False)
    train(cfg(resumed), run_dir=resumed, resume=True, stop_at=end, progress=False)
    a, b = metric_losses(straight), metric_losses(resumed)
    diffs = [abs(a[s] - b[s]) / abs(a[s]) for s in range(at + 1, end + 1)]
    ok = max(diffs) <= RESUME_TOLERANCE
    return ok, f"steps {at + 1}-{end} after resuming at {at}: max relative loss difference {max(diffs):.2e} " \
               f"(tolerance {RESUME_TOLERANCE:g})", {"straight": a, "resumed": b, "tolerance": RESUME_TOLERANCE}


@contextlib.contextmanager
def one_process_group(root: Path, device: torch.device) -> Iterator[Any]:
    """A process group of one (NCCL on CUDA, gloo on the CPU) and a DistEnv that takes the distributed path."""
    import torch.distributed as dist

    from mirai_cli.runtime.distributed import DistEnv

    class OneProcess(DistEnv):
        @property
        def distributed(self) -> bool:  # world size 1, but through the multi-process code (fsdp)
            return True

    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method=f"file://{root}/pg",
                            rank=0, world_size=1)
    try:
        yield OneProcess(rank=0, world_size=1, local_rank=0, device=device)
    finally:
        dist.destroy_process_group()


def check_fsdp(ws: Workspace) -> tuple[bool, str, dict]:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, set_model_state_dict

    from mirai_cli.engine.run import build_run
    from mirai_cli.engine.step import train_step

    seen: dict[str, Any] = {}
    with one_process_group(ws.root, ws.device) as env:
        config = ws.config("mirai-e", ws.root / "run-fsdp", False, **{"train.parallel": "fsdp"})
        run = build_run(config, env, progress=False)
        def note(key: str, value: Callable[[torch.nn.Module, tuple], Any]) -> Callable:
            def hook(module: torch.nn.Module, args: tuple) -> None:  # returns None: the inputs stay as they are
                seen.setdefault(key, value(module, args))
            return hook

        hooks = [  # registered after fully_shard's own hooks: they see what FSDP hands on
            run.gpt.layers[0].register_forward_pre_hook(note("rope", lambda m, a: a[1].dtype)),
            run.step_module.register_forward_pre_hook(note("targets", lambda m, a: a[2].dtype)),
            run.teacher_module.layers[0].register_forward_pre_hook(
                note("teacher_weights", lambda m, a: {p.dtype for p in m.parameters()})),
        ]
        out = train_step(run, 0, [run.reader.to_device(b) for b in run.reader.read(0)])
        for h in hooks:
            h.remove()
        finite = bool(torch.isfinite(out.losses).all())
        state = get_model_state_dict(run.step_module)
        before = {k: v.full_tensor().clone() if hasattr(v, "full_tensor") else v.clone() for k, v in state.items()}
        dcp.save(state, checkpoint_id=str(ws.root / "dcp"))
        with torch.no_grad():
            for p in run.step_module.parameters():
                p.zero_()
        loaded = get_model_state_dict(run.step_module)
        dcp.load(loaded, checkpoint_id=str(ws.root / "dcp"))
        set_model_state_dict(run.step_module, loaded)
        after = get_model_state_dict(run.step_module)
        same = all(torch.equal(before[k], v.full_tensor() if hasattr(v, "full_tensor") else v) for k, v in after.items())
    dtypes = {"rope": seen.get("rope"), "targets": seen.get("targets"), "teacher_weights": seen.get("teacher_weights")}
    dtype_ok = dtypes["rope"] == torch.float32 and dtypes["targets"] == torch.float32 and \
        dtypes["teacher_weights"] == {torch.float32}
    text = {k: str(v) for k, v in dtypes.items()}
    return finite and same and dtype_ok, (f"one step {'finite' if finite else 'NOT finite'}, DCP save/load "
                                          f"{'restores' if same else 'does NOT restore'} the weights; dtypes {text}"), \
        {"finite": finite, "dcp_roundtrip": same, "dtypes": text}


def trained_checkpoint(ws: Workspace) -> Path:
    return ws.root / "resume-straight"


def check_sample_tokens(ws: Workspace) -> tuple[bool, str, dict]:
    from mirai_cli.gpt.checkpoint import load_gpt_checkpoint
    from mirai_cli.gpt.generate import generate
    from mirai_cli.sampling.from_config import sample_job_from_config

    config = ws.config("mirai-e", trained_checkpoint(ws))
    defaults = sample_job_from_config(config, str(trained_checkpoint(ws))).options
    model, cfg, _ = load_gpt_checkpoint(trained_checkpoint(ws), "ema", device=ws.device)
    labels = torch.arange(8, device=ws.device) % cfg.num_classes
    # CUDA: eager vs compiled decoding. CPU mode (compiling costs minutes there): the cached decode vs recomputing
    # the whole prefix at every step, which the same comparison code checks.
    variants = {"eager": dict(compile=False), "compiled": dict(compile=True)} if ws.device.type == "cuda" else \
        {"eager": dict(compile=False), "uncached": dict(use_cache=False)}
    tokens = {}
    for name, change in variants.items():
        opts = replace(defaults, precision="fp32", **change)
        tokens[name] = generate(model, labels, opts, generator=torch.Generator(ws.device).manual_seed(1)).cpu()
    a, b = tokens.values()
    differ = int((a != b).sum())
    return differ == 0, f"{' vs '.join(variants)} decoding, fp32, batch 8, cfg {defaults.cfg_scale}: " \
                        f"{'same tokens' if differ == 0 else f'{differ} tokens differ'}", {"differing_tokens": differ}


def check_sample_speed(ws: Workspace, batch: int) -> tuple[bool, str, dict]:
    from mirai_cli.sampling import run_sample_job
    from mirai_cli.sampling.from_config import sample_job_from_config

    config = ws.config("mirai-e", trained_checkpoint(ws), **{"sample.batch_size": batch})
    out = ws.root / f"samples-b{batch}"
    job = sample_job_from_config(config, str(trained_checkpoint(ws)), out_dir=str(out), random_classes=2 * batch,
                                 device=str(ws.device))
    result = run_sample_job(job)
    ran = json.loads((out / "sample_manifest.json").read_text())["options"]
    ok = result.total == 2 * batch and result.npz is not None
    return ok, f"`mirai sample` defaults at batch {batch}: {result.images_per_second:.2f} images/s " \
               f"({result.total} images, {ran['weights_dtype']} weights, compile {ran['compile']})", \
        {"batch": batch, "images_per_s": round(result.images_per_second, 3), "images": result.total,
         "npz": str(result.npz), "weights_dtype": ran["weights_dtype"], "compile": ran["compile"]}


def check_evaluate(ws: Workspace) -> tuple[bool, str, dict]:
    from bench.random_extractor import NAME, register
    from mirai_cli.data.store import TokenStore
    from mirai_cli.evaluation import EvalSettings, evaluate
    from mirai_cli.evaluation.nll import validation_nll
    from mirai_cli.gpt.checkpoint import load_gpt_checkpoint

    register(ws.root / "extractor.pt", size=64 if CPU else 224)
    samples = ws.root / f"samples-b{ws.shape.sample_batches[0]}"
    settings = EvalSettings(metrics=("fid",), extractor=NAME, device=str(ws.device), allow_download=False,
                            cache_dir=str(ws.root / "eval-cache"), batch_size=32)
    t0 = sync(ws.device)
    result = evaluate(samples, str(ws.root / "images.npz"), settings)
    eval_s = sync(ws.device) - t0
    fid = float(result.values.get("fid", float("nan")))
    model, _, _ = load_gpt_checkpoint(trained_checkpoint(ws), "ema", device=ws.device)
    t0 = sync(ws.device)
    nll = validation_nll(model, TokenStore.open(ws.store), device=ws.device)
    nll_s = sync(ws.device) - t0
    on_device = next(model.parameters()).device.type == ws.device.type
    ok = bool(np.isfinite(fid) and np.isfinite(nll) and on_device)
    return ok, f"FID {fid:.2f} (random-weight extractor on {ws.device.type}, {eval_s:.1f} s); validation NLL " \
               f"{nll:.3f} on {ws.device.type} ({nll_s:.2f} s)", {"fid": fid, "nll": nll, "eval_s": eval_s,
                                                                   "nll_s": nll_s}


def planned_checks(ws: Workspace) -> list[tuple[str, Callable[[], tuple[bool, str, dict]]]]:
    """In order of importance, so that a slow machine spends its budget on what matters most: every eager
    variant, the compiled baseline and Mirai-E, resume, FSDP, sampling, evaluation, then the other compiled runs
    (compiling on a CPU costs minutes: the CPU mode trains eager only)."""
    train = lambda v, c: (f"train/{v}/{'compiled' if c else 'eager'}", lambda: check_train(ws, v, c))  # noqa: E731
    checks = [("defaults", lambda: check_defaults(ws))] + [train(v, False) for v in VARIANTS]
    checks += [] if CPU else [train("baseline", True), train("mirai-e", True)]
    checks += [("resume", lambda: check_resume(ws)), ("fsdp", lambda: check_fsdp(ws)),
               ("sample/tokens", lambda: check_sample_tokens(ws))]
    checks += [(f"sample/b{b}", lambda b=b: check_sample_speed(ws, b)) for b in ws.shape.sample_batches]
    checks += [("evaluate", lambda: check_evaluate(ws))]
    return checks + ([] if CPU else [train("mirai-i-cached", True), train("mirai-i-online", True)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=None, help="results file (default: $OUT/gpu_check.json, else none)")
    args = parser.parse_args()
    device = torch.device("cpu" if CPU else "cuda")
    shape = CPU_SHAPE if CPU else GPU_SHAPE
    if CPU:
        torch.set_num_threads(1)
    report = Report()
    started = time.perf_counter()
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "mode": "cpu" if CPU else "cuda",
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    print(f"gpu_check: {info['device']}, torch {info['torch']} (CUDA {info['cuda']}), {info['mode']} mode", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        ws = Workspace(Path(tmp), shape, device)
        for name, check in planned_checks(ws):
            if time.perf_counter() - started > BUDGET_S:
                report.record(name, False, f"not run: the {BUDGET_S:.0f} s budget was spent")
            else:
                report.run(name, check)
    info["seconds"] = round(time.perf_counter() - started, 1)
    passed = sum(c["pass"] for c in report.checks)
    print(f"gpu_check: {passed}/{len(report.checks)} checks passed in {info['seconds']} s", flush=True)
    out = args.json or (os.path.join(os.environ["OUT"], "gpu_check.json") if os.environ.get("OUT") else None)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps({**info, "checks": report.checks}, indent=1, default=str))
        print(f"gpu_check: results in {out}", flush=True)
    raise SystemExit(0 if passed == len(report.checks) else 1)


if __name__ == "__main__":
    main()
