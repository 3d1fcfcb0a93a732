"""Training a VQ tokenizer from scratch (`mirai tokenize fit`): L2 reconstruction + codebook + commitment
losses, optional LPIPS and PatchGAN hinge loss, AdamW, bf16 autocast, atomic checkpoints, resume, a JSONL log.

Output folder:
    tokenizer.pt            the trained tokenizer (save_tokenizer format; `extra` holds image_size and metrics)
    checkpoints/last.pt     full training state for resume
    fit_log.jsonl           one line per log step, plus the final evaluation
    reconstructions.png     held-out originals (odd rows) above their reconstructions (even rows)
    fit_summary.json        final PSNR, codebook usage, steps, time

Built like the engine's loop: `build_fit` -> `FitRun` (models, optimizers, codebook care; `FitRun.state_dict` is
what a checkpoint holds) -> `fit_step(run, step, batch)` returning device tensors -> `_train`, which reads them
back once on log, evaluation and checkpoint steps only (the NaN guard, metrics/monitor.py, keeps its flag on
the device). The log is the shared metrics/log.py MetricsLog; states are read by files.atomic.torch_load_state.
An identical rerun of a finished fit returns its result without running (`already_fitted`)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mirai_cli.config.schema import section_defaults
from mirai_cli.data.crops import center_crop_arr, to_model_input
from mirai_cli.data.images import UnreadableImage, image_grid, save_png
from mirai_cli.data.loading import read_ahead
from mirai_cli.data.sources import ImageSource, open_source
from mirai_cli.errors import MiraiError, TrainingDiverged
from mirai_cli.files.atomic import remove_temp_files, torch_load_state, torch_save, write_json
from mirai_cli.files.locks import folder_lock
from mirai_cli.files.manifest import manifest
from mirai_cli.metrics.log import MetricsLog
from mirai_cli.metrics.monitor import Monitor, Reading
from mirai_cli.runtime.device import autocast, resolve_device, resolve_precision
from mirai_cli.runtime.distributed import DistEnv
from mirai_cli.runtime.progress import make_progress, warn
from mirai_cli.tokenizer.checkpoint import load_tokenizer, save_tokenizer
from mirai_cli.tokenizer.codebook import DeadCodeRestarter, init_codebook
from mirai_cli.tokenizer.config import VQConfig
from mirai_cli.tokenizer.discriminator import (
    PatchGANDiscriminator,
    adaptive_weight,
    hinge_d_loss,
    hinge_g_loss,
)
from mirai_cli.tokenizer.evaluate import evaluate_reconstruction
from mirai_cli.tokenizer.vq_model import VQModel

# The preset's defaults, the one place they are written: a fit's settings are the [tokenizer] fit_* ones, the
# image size and split of [data], and the precision, seed and log interval of [train].
TOKENIZER, DATA, TRAIN = (section_defaults(s) for s in ("tokenizer", "data", "train"))
SINGLE_PROCESS = DistEnv(0, 1, 0, torch.device("cpu"))  # a fit runs in one process


@dataclass
class FitConfig:
    source: str
    out_dir: str
    vq: VQConfig = field(default_factory=VQConfig)
    image_size: int = DATA["image_size"]
    split: str = DATA["split"]
    steps: int = TOKENIZER["fit_steps"]
    batch_size: int = TOKENIZER["fit_batch_size"]
    lr: float = TOKENIZER["fit_lr"]
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    precision: str = TRAIN["precision"]
    device: str = "auto"
    seed: int = TRAIN["seed"]
    flip: bool = True  # random horizontal flips
    codebook_weight: float = 1.0
    perceptual_weight: float = TOKENIZER["perceptual_weight"]  # LPIPS (VGG16) loss weight; 0 = off
    lpips_vgg_weights: str | None = TOKENIZER["perceptual_weights"]  # torchvision vgg16 state dict; None: its cache
    lpips_lin_weights: str | None = None  # LPIPS vgg.pth; None: the `lpips` package's, else equal weights
    disc_start: int = TOKENIZER["disc_start"]
    disc_weight: float = TOKENIZER["disc_weight"]  # PatchGAN hinge loss weight; 0 = no discriminator
    disc_adaptive_weight: bool = False
    disc_lr: float | None = None  # None: same as lr
    disc_layers: int = 3  # PatchGAN depth (capped for small images)
    kmeans_init: bool = True  # codebook <- k-means of the first batches' encoder outputs
    kmeans_batches: int = 8
    restart_dead_every: int = 100  # steps; 0 turns dead-code restarts off
    restart_until: float = 0.8  # stop restarting after this fraction of the steps, so the end is stable
    eval_images: int = 256  # held out from training
    eval_every: int = 0  # steps; 0: only at the end
    checkpoint_every: int = 500
    log_every: int = TRAIN["log_every"]
    resume: bool = True
    time_limit_s: float | None = TOKENIZER["fit_time_limit"]  # stop early (with a checkpoint and the final evaluation)
    init_from: str | None = None  # start from a tokenizer checkpoint (fine-tuning)
    show_progress: bool = True
    force: bool = False  # continue into a finished tokenizer's folder (e.g. more steps), replacing tokenizer.pt

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["vq"] = self.vq.to_dict()
        d["betas"] = list(self.betas)
        return d


@dataclass
class FitResult:
    tokenizer_path: Path
    steps: int
    psnr: float
    codebook_usage: float
    codes_used: int
    seconds: float
    grid_png: Path
    already_fitted: bool = False  # an identical finished fit was found: nothing was run or written


# Settings that say how a fit runs, not what it makes: a rerun differing only in these is the same fit.
RUN_ONLY = ("show_progress", "force", "resume")


def split_indices(n: int, n_eval: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed held-out subset (the same for every run with this seed) and the training rest."""
    perm = np.random.default_rng(seed).permutation(n)
    n_eval = min(n_eval, max(1, n // 10)) if n > 1 else 0
    return np.sort(perm[n_eval:]), np.sort(perm[:n_eval])


def read_prepared(src: ImageSource, i: int, size: int) -> np.ndarray | None:
    try:
        img, _ = src.read(int(i))
    except UnreadableImage as e:
        warn(f"skipped {e.path}: {e.reason}")
        return None
    return center_crop_arr(img, size)


def _train_batches(src: ImageSource, train_idx: np.ndarray, cfg: FitConfig, start_step: int) -> Iterator[np.ndarray]:
    """Batch for step s is drawn from rng(seed, s): resuming at step s gives the same batches."""
    misses = 0
    for step in range(start_step, cfg.steps):
        rng = np.random.default_rng([cfg.seed, step])
        batch = []
        while len(batch) < cfg.batch_size:
            img = read_prepared(src, train_idx[rng.integers(len(train_idx))], cfg.image_size)
            if img is None:
                misses += 1
                if misses > 100 * cfg.batch_size + len(train_idx):  # almost nothing readable: stop, do not spin
                    raise MiraiError(f"almost every training image of {cfg.source} is unreadable ({misses} failed "
                                     "reads): fix or remove the broken files")
                continue
            if cfg.flip and rng.random() < 0.5:
                img = img[:, ::-1]
            batch.append(img)
        yield np.stack(batch)


def _decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv/linear kernels and the codebook only (tensors with >= 2 dims), not on biases and norms."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def _check_resume(ckpt: dict[str, Any], cfg: FitConfig, path: Path) -> None:
    old = VQConfig.from_dict(ckpt["config"])
    if old != cfg.vq:
        raise MiraiError(f"{path} was trained with another tokenizer config ({old.to_dict()}); use a new output "
                         "folder or the same tokenizer settings")
    if ckpt.get("image_size") != cfg.image_size:
        raise MiraiError(f"{path} was trained at image size {ckpt.get('image_size')}, not {cfg.image_size}: use a "
                         "new output folder or the same image size")


def _readable(src: ImageSource, indices: np.ndarray, size: int, what: str, spec: str) -> None:
    """At least one image of `indices` can be read (checked before any training, so a fit never spins)."""
    if not any(read_prepared(src, i, size) is not None for i in indices):
        raise MiraiError(f"none of the {len(indices)} {what} images of {spec} can be read: fix or replace the "
                         "image files (see the warnings above)")


def _load_state(path: Path, dev: torch.device) -> dict[str, Any]:
    return torch_load_state(path, "the fit state", "delete it to fit from the start, or fit into another folder with "
                            "--out", map_location=dev, required=("model", "optimizer", "config", "step"))


def fit_tokenizer(cfg: FitConfig, log: Callable[[str], None] = warn) -> FitResult:
    """Fit (or finish fitting) a tokenizer into cfg.out_dir, which this job locks while it writes."""
    out = Path(cfg.out_dir)
    finished = out / "tokenizer.pt"
    if finished.is_file() and not cfg.force:
        done = _same_finished_fit(cfg, out)
        if done is not None:
            return done
        raise MiraiError(f"{out} already holds a finished tokenizer ({finished}); stores and runs made with it "
                         "need it as it is: fit a new one elsewhere with --out NEW_FOLDER, or continue this fit (e.g. more "
                         "steps) and replace it with --force")
    with folder_lock(out, {"data.source": cfg.source}):
        return _fit(cfg, out, log)


def _same_finished_fit(cfg: FitConfig, out: Path) -> FitResult | None:
    """The result of the finished fit in `out` when it ran to its end with exactly these settings, else None."""
    try:
        summary = json.loads((out / "fit_summary.json").read_text())
    except (OSError, ValueError):
        return None
    ran = {k: v for k, v in summary.get("fit_config", {}).items() if k not in RUN_ONLY}
    asked = json.loads(json.dumps({k: v for k, v in cfg.to_dict().items() if k not in RUN_ONLY}, default=str))
    if summary.get("stopped_early", True) or ran != asked:
        return None
    return FitResult(out / "tokenizer.pt", summary["steps"], summary["psnr"], summary["codebook_usage"],
                     summary["codes_used"], 0.0, out / "reconstructions.png", already_fitted=True)


@dataclass
class FitRun:
    """Everything a fit step touches: the models, their optimizers, the codebook care and the device-side guard."""
    cfg: FitConfig
    out: Path
    dev: torch.device
    prec: str
    gen: torch.Generator  # codebook k-means and dead-code restarts (its state is checkpointed)
    src: ImageSource
    train_idx: np.ndarray
    eval_images: np.ndarray
    model: VQModel
    opt: torch.optim.Optimizer
    perceptual: torch.nn.Module | None
    disc: PatchGANDiscriminator | None
    disc_opt: torch.optim.Optimizer | None
    restarter: DeadCodeRestarter
    monitor: Monitor
    metrics: MetricsLog
    t0: float

    @property
    def ckpt_path(self) -> Path:
        return self.out / "checkpoints" / "last.pt"

    def state_dict(self, step: int) -> dict[str, Any]:
        """The one description of what a fit checkpoint holds."""
        state = {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(), "config": self.cfg.vq.to_dict(),
                 "image_size": self.cfg.image_size, "step": step, "restarter": self.restarter.state_dict(),
                 "rng": self.gen.get_state(), "fit_config": self.cfg.to_dict()}
        if self.disc is not None:
            state["disc"], state["disc_optimizer"] = self.disc.state_dict(), self.disc_opt.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> int:
        """Restore a checkpoint's state; -> its step."""
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        if self.disc is not None and "disc" in state:
            self.disc.load_state_dict(state["disc"])
            self.disc_opt.load_state_dict(state["disc_optimizer"])
        self.restarter.load_state_dict(state["restarter"])
        self.gen.set_state(state["rng"].cpu())
        return int(state["step"])


@dataclass
class FitStepOutput:
    """One step's figures, still on the device: `losses[i]` is term `keys[i]`; read only on log steps."""
    keys: list[str]
    losses: torch.Tensor
    grad_norm: torch.Tensor
    restarted: int  # codes restarted at this step (a host number: restarts are rare, periodic steps)


def _load_data(cfg: FitConfig) -> tuple[ImageSource, np.ndarray, np.ndarray]:
    """The source, its training indices and the held-out images (checked readable before any training)."""
    src = open_source(cfg.source, cfg.split)
    if len(src) < 2:
        raise MiraiError(f"data source {cfg.source} has {len(src)} image(s): a tokenizer fit needs more")
    train_idx, eval_idx = split_indices(len(src), cfg.eval_images, cfg.seed)
    _readable(src, train_idx, cfg.image_size, "training", cfg.source)
    eval_list = [im for i in eval_idx if (im := read_prepared(src, i, cfg.image_size)) is not None]
    if not eval_list:
        raise MiraiError(f"none of the {len(eval_idx)} held-out images of {cfg.source} can be read: fix or replace "
                         "the image files (see the warnings above)")
    return src, train_idx, np.stack(eval_list)


def _build_models(cfg: FitConfig, dev: torch.device, log: Callable[[str], None]) -> tuple[Any, ...]:
    """-> model, optimizer, LPIPS (or None), discriminator and its optimizer (or None, None). Built in this order:
    each draws its initial weights from the global RNG."""
    model = load_tokenizer(cfg.init_from, cfg.vq, device=dev)[0] if cfg.init_from else VQModel(cfg.vq).to(dev)
    model.train()
    opt = torch.optim.AdamW(_decay_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas)
    perceptual = None
    if cfg.perceptual_weight > 0:
        from mirai_cli.tokenizer.lpips import LPIPS

        perceptual = LPIPS(cfg.lpips_vgg_weights, cfg.lpips_lin_weights).to(dev)
        if not perceptual.learned:
            log("LPIPS: learned channel weights not found (pip package `lpips` or a vgg.pth file); "
                "using equal channel weights")
    disc = disc_opt = None
    if cfg.disc_weight > 0:
        # fewer layers on small images, so that the last 4x4 convolutions still fit
        n_layers = max(1, min(cfg.disc_layers, int(math.log2(cfg.image_size / 3))))
        disc = PatchGANDiscriminator(n_layers=n_layers).to(dev).train()
        disc_opt = torch.optim.AdamW(_decay_groups(disc, cfg.weight_decay), lr=cfg.disc_lr or cfg.lr, betas=cfg.betas)
    return model, opt, perceptual, disc, disc_opt


def build_fit(cfg: FitConfig, out: Path, log: Callable[[str], None]) -> FitRun:
    t0 = time.time()
    remove_temp_files(out)
    remove_temp_files(out / "checkpoints")
    dev = resolve_device(cfg.device)
    prec = resolve_precision(cfg.precision, dev)
    cfg.vq.grid(cfg.image_size)  # fails early on an image size the tokenizer cannot tile
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    src, train_idx, eval_images = _load_data(cfg)
    model, opt, perceptual, disc, disc_opt = _build_models(cfg, dev, log)
    return FitRun(cfg, out, dev, prec, gen, src, train_idx, eval_images, model, opt, perceptual, disc, disc_opt,
                  DeadCodeRestarter(model.quantize, cfg.restart_dead_every), Monitor(dev),
                  MetricsLog(out / "fit_log.jsonl"), t0)


def _resume(run: FitRun, log: Callable[[str], None]) -> int:
    """Continue from the folder's checkpoint, if any (and asked to); -> the step to continue after."""
    if not (run.cfg.resume and run.ckpt_path.is_file()):
        return 0
    state = _load_state(run.ckpt_path, run.dev)
    _check_resume(state, run.cfg, run.ckpt_path)
    start = run.load_state_dict(state)
    run.metrics.truncate_after(start)  # lines past the checkpoint are written again, identically
    log(f"resuming {run.out} at step {start}")
    return start


def _kmeans_init(run: FitRun) -> None:
    """Codebook <- k-means of encoder outputs of fresh batches drawn with a separate seed (training order unchanged)."""
    cfg, zs = run.cfg, []
    with torch.no_grad(), autocast(run.dev, run.prec):
        for b in range(cfg.kmeans_batches):
            rng = np.random.default_rng([cfg.seed, 2**31, b])  # apart from the step streams
            imgs = np.stack([im for i in rng.choice(run.train_idx, cfg.batch_size)
                             if (im := read_prepared(run.src, i, cfg.image_size)) is not None])
            z = run.model.quantize_images(to_model_input(imgs).to(run.dev)).z
            zs.append(z.reshape(-1, cfg.vq.codebook_dim))
    init_codebook(run.model.quantize, torch.cat(zs).cpu(), run.gen)


def _generator_loss(run: FitRun, x: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], Any]:
    """The tokenizer's loss and its terms (device tensors), under autocast; -> loss, terms, rec, quantizer output."""
    cfg = run.cfg
    with autocast(run.dev, run.prec):
        rec, q = run.model(x)
        rec_loss = F.mse_loss(rec.float(), x)
        loss = rec_loss + cfg.codebook_weight * (q.codebook_loss + q.commit_loss)
        terms = {"rec": rec_loss, "codebook": q.codebook_loss, "commit": q.commit_loss}
        if run.perceptual is not None:
            terms["lpips"] = p_loss = run.perceptual(x, rec).mean()
            loss = loss + cfg.perceptual_weight * p_loss
        if run.disc is not None and step > cfg.disc_start:
            terms["gen_adv"] = g_loss = hinge_g_loss(run.disc(rec))
            w = cfg.disc_weight
            if cfg.disc_adaptive_weight:
                nll = rec_loss + (cfg.perceptual_weight * terms["lpips"] if run.perceptual is not None else 0)
                w = w * adaptive_weight(nll, g_loss, run.model.decoder.last_layer)
            loss = loss + w * g_loss
    return loss, terms, (rec, q)


def fit_step(run: FitRun, step: int, batch: np.ndarray) -> FitStepOutput:
    """One optimizer step of the tokenizer (and of the discriminator once it has started). Nothing is read back
    to the host: the NaN guard keeps its flag on the device (metrics/monitor.py)."""
    cfg = run.cfg
    x = to_model_input(batch).to(run.dev)
    loss, terms, (rec, q) = _generator_loss(run, x, step)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    params = list(run.model.parameters())
    grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip) if cfg.grad_clip > 0 else loss.new_zeros(())
    run.opt.step()
    if run.disc is not None and step > cfg.disc_start:
        with autocast(run.dev, run.prec):
            d_loss = hinge_d_loss(run.disc(x), run.disc(rec.detach()))
        run.disc_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        run.disc_opt.step()
        terms["disc"] = d_loss
    run.restarter.observe(q.codes, q.z)
    restarted = run.restarter.maybe_restart(step, run.opt, run.gen) if step <= int(cfg.restart_until * cfg.steps) else 0
    keys = ["loss", *terms]
    losses = torch.stack([loss.detach().float(), *(v.detach().float() for v in terms.values())])
    run.monitor.observe(step, losses, grad_norm)
    return FitStepOutput(keys, losses, grad_norm, restarted)


def _read(run: FitRun, out: FitStepOutput) -> Reading:
    """The step's figures on the host (log, evaluation and checkpoint steps only); stops a diverged fit."""
    reading = run.monitor.read(out.keys, out.losses, out.grad_norm, SINGLE_PROCESS, False)
    if reading.diverged:
        kept = (f"the last good checkpoint is {run.ckpt_path} (lower the learning rate and resume)"
                if run.ckpt_path.is_file() else "no checkpoint was written yet (lower the learning rate and start again)")
        raise TrainingDiverged(f"the tokenizer loss or gradient became non-finite at step {reading.first_bad_step}; "
                               + kept)
    return reading


def _log_record(run: FitRun, step: int, out: FitStepOutput, reading: Reading) -> dict[str, Any]:
    window_used = int((run.restarter.counts > 0).sum())
    return {"step": step, **reading.losses, "lr": run.cfg.lr, "restarted": out.restarted,
            "codes_seen_since_check": window_used, "sec": round(time.time() - run.t0, 2)}


def _after_step(run: FitRun, step: int, out: FitStepOutput, progress: Any, task: Any) -> None:
    """What a step's number asks for: a log line, an evaluation, a checkpoint (each reads the device first)."""
    cfg = run.cfg
    log_now = step % cfg.log_every == 0 or step == cfg.steps
    eval_now = bool(cfg.eval_every) and step % cfg.eval_every == 0 and step != cfg.steps
    save_now = step % cfg.checkpoint_every == 0
    if not (log_now or eval_now or save_now):
        return
    reading = _read(run, out)
    if log_now:
        run.metrics.write(_log_record(run, step, out, reading))
        progress.update(task, status=f"loss {reading.losses['loss']:.4f} rec {reading.losses['rec']:.4f}")
    if eval_now:
        r = evaluate_reconstruction(run.model, run.eval_images, run.dev, run.prec)
        run.metrics.write({"step": step, "eval_psnr": r.psnr, "eval_codebook_usage": r.codebook_usage})
    if save_now:
        torch_save(run.state_dict(step), run.ckpt_path)


def _train(run: FitRun, start: int) -> tuple[int, bool]:
    """The loop: steps start+1 .. cfg.steps, or until the time limit; -> (last step, stopped early)."""
    cfg = run.cfg
    batches = read_ahead(_train_batches(run.src, run.train_idx, cfg, start))
    if start == 0 and cfg.kmeans_init and not cfg.init_from:
        _kmeans_init(run)
    step, out = start, None
    with make_progress(cfg.show_progress) as progress:
        task = progress.add_task("fit", total=cfg.steps, completed=start, status="")
        for step in range(start + 1, cfg.steps + 1):
            out = fit_step(run, step, next(batches))
            _after_step(run, step, out, progress, task)
            progress.advance(task)
            if cfg.time_limit_s is not None and time.time() - run.t0 > cfg.time_limit_s:
                return step, True
    return step, False


def _finish(run: FitRun, step: int, stopped_early: bool) -> FitResult:
    """The last checkpoint, the final evaluation, the reconstruction grid, tokenizer.pt and the summary."""
    cfg, out = run.cfg, run.out
    _read(run, FitStepOutput([], torch.zeros(0, device=run.dev), torch.zeros((), device=run.dev), 0))
    torch_save(run.state_dict(step), run.ckpt_path)
    report = evaluate_reconstruction(run.model, run.eval_images, run.dev, run.prec)
    seconds = time.time() - run.t0
    summary = {"steps": step, "stopped_early": stopped_early, "psnr": report.psnr,
               "codebook_usage": report.codebook_usage, "codes_used": report.codes_used,
               "codebook_size": cfg.vq.codebook_size, "eval_images": len(run.eval_images),
               "seconds": round(seconds, 1), "image_size": cfg.image_size, "precision": run.prec}
    run.metrics.write({"step": step, "final": True, **summary})
    n_show = min(32, len(run.eval_images))
    pairs = []
    for r0 in range(0, n_show, 8):  # originals row, then their reconstructions row
        pairs += [run.eval_images[r0: r0 + 8], report.reconstructions[r0: r0 + 8]]
    grid_png = save_png(image_grid(np.concatenate(pairs), nrow=8), out / "reconstructions.png")
    tok_path = save_tokenizer(out / "tokenizer.pt", run.model.eval(), cfg.vq, {
        "image_size": cfg.image_size, "source": run.src.to_manifest(), "fit": summary})
    write_json(out / "fit_summary.json", {**manifest("mirai-tokenizer-fit", cfg.seed), **summary,
                                          "fit_config": cfg.to_dict()}, indent=1, sort_keys=True)
    return FitResult(tok_path, step, report.psnr, report.codebook_usage, report.codes_used, seconds, grid_png)


def _fit(cfg: FitConfig, out: Path, log: Callable[[str], None]) -> FitResult:
    run = build_fit(cfg, out, log)
    start = _resume(run, log)
    step, stopped_early = _train(run, start)
    return _finish(run, step, stopped_early)
