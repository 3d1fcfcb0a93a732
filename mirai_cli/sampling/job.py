"""The sampling job: checkpoint + tokenizer -> PNGs, samples.npz and grid.png; sharded, resumable, torchrun-aware.

Work is cut into shards of `shard_size` consecutive samples; under torchrun rank r takes shards r, r + world,
r + 2*world, ... Each batch draws from its own generator seeded by (seed, index of its first sample), so a
resumed job regenerates a missing batch exactly as before (same device, same batch size) and skips finished ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mirai_cli.config.auto import resolve_compile, resolve_sample_batch, resolve_weights_dtype
from mirai_cli.config.schema import section_defaults
from mirai_cli.data.crops import to_uint8
from mirai_cli.errors import MiraiError
from mirai_cli.files.hashing import sha256_file
from mirai_cli.files.locks import release
from mirai_cli.files.manifest import manifest
from mirai_cli.gpt.checkpoint import (
    ShapeHints,
    build_from_state_dict,
    find_checkpoint_dir,
    read_gpt_checkpoint,
)
from mirai_cli.gpt.generate import SampleOptions, autocast_dtype, generate
from mirai_cli.gpt.logits import CFG_SCHEDULES
from mirai_cli.gpt.model import GPT
from mirai_cli.runtime.distributed import DistEnv, barrier, broadcast_object, job_env
from mirai_cli.sampling import outputs
from mirai_cli.sampling.plan import class_plan
from mirai_cli.sampling.writer import ImageWriter
from mirai_cli.tokenizer.checkpoint import (
    TokenizerIdentity,
    load_tokenizer,
    resolve_tokenizer_path,
    tokenizer_identity,
)


@dataclass
class SampleJob:
    checkpoint: str  # run folder, checkpoint folder, .safetensors or LlamaGen c2i_*.pt
    out_dir: str
    tokenizer: str | None = None  # default: the tokenizer recorded in the checkpoint's meta.json
    default_tokenizer: str | None = None  # used when neither `tokenizer` nor the checkpoint names one
    weights: str = "ema"  # ema | raw
    classes: list[int] | None = None  # explicit labels, one sample each, in order
    per_class: int = 50  # default plan: this many of every class
    random_classes: int | None = None  # instead: this many uniformly random labels
    image_size: int | None = None  # default: GPT grid x tokenizer downsampling
    model_shape: tuple[int, int, int] | None = None  # (layers, dim, heads) for files that do not record theirs
    tokenizer_config: Any = None  # the user's VQConfig, for a tokenizer file that records none
    options: SampleOptions = field(default_factory=SampleOptions)
    batch_size: int | str = section_defaults("sample")["batch_size"]  # auto: by device (config/auto.py)
    shard_size: int = 1000
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    write_npz: bool = True
    grid_images: int = 64
    allow_other_tokenizer: bool = False  # decode with a tokenizer other than the one the GPT was trained on


@dataclass
class SampleResult:
    out_dir: Path
    total: int  # samples in the plan
    generated: int  # samples this process generated now
    skipped: int  # samples of this process's shards that were already on disk
    seconds: float
    npz: Path | None
    grid: Path | None
    resumed: bool

    @property
    def images_per_second(self) -> float:
        return self.generated / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[int, int], None]  # (samples finished by this process, samples this process owns)


def batch_seed(seed: int, first_index: int) -> int:
    return int(np.random.SeedSequence([seed, first_index]).generate_state(1, np.uint64)[0] >> 1)


def shards_of_rank(total: int, shard_size: int, rank: int, world: int) -> list[range]:
    starts = range(0, total, shard_size)
    return [range(s, min(total, s + shard_size)) for k, s in enumerate(starts) if k % world == rank]


def _tokenizer_path(job: SampleJob, meta: dict[str, Any]) -> str:
    """The VQ checkpoint file: given > recorded in the checkpoint (if still there) > the preset's."""
    recorded = (meta.get("tokenizer") or {}).get("checkpoint") or (meta.get("tokenizer") or {}).get("path")
    if job.tokenizer:
        chosen = job.tokenizer
    elif isinstance(recorded, str) and (Path(recorded).exists() or not job.default_tokenizer):
        chosen = recorded
    elif job.default_tokenizer:
        chosen = job.default_tokenizer
    else:
        raise MiraiError(
            f"{job.checkpoint} does not record its tokenizer: give the VQ checkpoint (e.g. vq_ds16_c2i.pt) explicitly"
        )
    return str(resolve_tokenizer_path(chosen))


def check_fit(gpt: GPT, meta: dict[str, Any], vq_cfg: Any, tok_path: str, tok_id: TokenizerIdentity,
              job: SampleJob) -> tuple[int, int]:
    """The GPT and the tokenizer must speak the same codes on the same grid. Returns the image size (H, W)."""
    cfg = gpt.cfg
    if vq_cfg.codebook_size != cfg.vocab_size:
        raise MiraiError(
            f"tokenizer {tok_path} has {vq_cfg.codebook_size} codes but the GPT {job.checkpoint} predicts "
            f"{cfg.vocab_size}: give the tokenizer the GPT was trained with"
        )
    ds = vq_cfg.downsample
    size = (cfg.grid[0] * ds, cfg.grid[1] * ds)
    if job.image_size is not None and (job.image_size, job.image_size) != size:
        raise MiraiError(
            f"image size {job.image_size} does not fit: the GPT makes {cfg.grid[0]}x{cfg.grid[1]} token grids and "
            f"the tokenizer downsamples {ds}x, so images are {size[0]}x{size[1]} px"
        )
    info = meta.get("tokenizer") or {}
    grid = info.get("grid")
    if grid is not None and tuple(grid) != tuple(cfg.grid):
        raise MiraiError(f"{job.checkpoint}: meta.json says tokenizer grid {list(grid)} but the GPT is built for "
                         f"{list(cfg.grid)}: the checkpoint is inconsistent")
    want_sha = info.get("sha256")
    if want_sha and not tok_id.matches(want_sha) and not job.allow_other_tokenizer:
        raise MiraiError(
            f"the GPT {job.checkpoint} was trained on codes of another tokenizer (sha256 {want_sha[:12]}...) than "
            f"{tok_path} ({tok_id.weights[:12]}...): give the tokenizer it was trained with"
        )
    return size


def identity_of(job: SampleJob, gpt_sha: str, tok_sha: str, labels: np.ndarray, size: tuple[int, int],
                device: torch.device) -> dict[str, Any]:
    """Everything that decides which image lands under which name (batch size and device aside)."""
    o = job.options
    bf16_weights = {"weights_dtype": "bf16"} if o.weights_dtype == "bf16" else {}  # fp32 keeps older identities
    return bf16_weights | {
        "gpt_sha256": gpt_sha,
        "tokenizer_sha256": tok_sha,
        "weights": job.weights,
        "labels_sha256": _array_sha(labels),
        "count": len(labels),
        "image_size": list(size),
        "seed": job.seed,
        "cfg_scale": o.cfg_scale,
        "cfg_schedule": o.cfg_schedule,
        "cfg_interval": o.cfg_interval if o.cfg_schedule == "interval" else None,
        "temperature": o.temperature,
        "top_k": o.top_k,
        "top_p": o.top_p,
        "precision": "bf16" if autocast_dtype(device, o.precision) is not None else "fp32",  # what really ran
    }


def _array_sha(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.int64).tobytes()).hexdigest()


def resolved_job(job: SampleJob, device: torch.device) -> SampleJob:
    """The job with its "auto" settings decided for the device (config/auto.py): compile, weights dtype, batch.
    What really runs is what the manifest records."""
    o = job.options
    computes_in = "bf16" if autocast_dtype(device, o.precision) is not None else "fp32"
    try:
        options = replace(o, compile=resolve_compile(o.compile, device.type),
                          weights_dtype=resolve_weights_dtype(o.weights_dtype, computes_in))
        return replace(job, options=options, batch_size=resolve_sample_batch(job.batch_size, device.type))
    except ValueError as exc:
        raise MiraiError(str(exc)) from None


def _validate(job: SampleJob) -> None:
    o = job.options
    if job.weights not in ("ema", "raw"):
        raise MiraiError(f"weights must be 'ema' or 'raw', not {job.weights!r}")
    if o.cfg_schedule not in CFG_SCHEDULES:
        raise MiraiError(f"cfg schedule must be one of {', '.join(CFG_SCHEDULES)}, not {o.cfg_schedule!r}")
    if job.batch_size < 1 or job.shard_size < 1:
        raise MiraiError("batch_size and shard_size must be >= 1")
    if o.weights_dtype not in ("fp32", "bf16"):
        raise MiraiError(f"weights dtype must be 'fp32' or 'bf16', not {o.weights_dtype!r}")
    if o.temperature <= 0 or not 0 < o.top_p <= 1 or o.top_k < 0 or o.cfg_scale < 0:
        raise MiraiError("need temperature > 0, 0 < top_p <= 1, top_k >= 0 and cfg_scale >= 0")


def run_sample_job(
    job: SampleJob,
    *,
    env: DistEnv | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] = lambda msg: None,
) -> SampleResult:
    """Run (or resume) a sampling job in this process; under torchrun every rank calls it with the same job."""
    with job_env(env, job.device) as env:  # torchrun's group, if any, is left when the job ends
        return _run_sample_job(job, env, progress, log)


def _run_sample_job(job: SampleJob, env: DistEnv, progress: Progress | None, log: Callable[[str], None]
                    ) -> SampleResult:
    device = env.device
    job = resolved_job(job, device)
    _validate(job)
    out_dir = Path(job.out_dir)

    raw = read_gpt_checkpoint(job.checkpoint, job.weights)
    meta = raw.meta
    tok_path = _tokenizer_path(job, meta)
    vq, vq_cfg = load_tokenizer(tok_path, device=device, stated=job.tokenizer_config)
    grid = vq_cfg.grid(job.image_size) if job.image_size is not None else None
    gpt_cfg = raw.config(ShapeHints(model=job.model_shape, grid=grid))
    gpt = build_from_state_dict(raw.state_dict, gpt_cfg, raw.file).to(device).eval()
    if job.options.weights_dtype == "bf16":  # the compute dtype under bf16 autocast: no re-cast every token
        gpt = gpt.to(torch.bfloat16)
    if raw.training_only:
        log(f"{job.checkpoint}: dropped {len(raw.training_only)} training-only tensors "
            f"({', '.join(meta['dropped'])}): sampling needs only the GPT")
    tok_id = tokenizer_identity(tok_path, vq, vq_cfg)
    size = check_fit(gpt, meta, vq_cfg, tok_path, tok_id, job)
    labels = class_plan(
        gpt_cfg.num_classes, classes=job.classes, per_class=job.per_class,
        random_count=job.random_classes, seed=job.seed,
    )

    resumed, problem = False, ""
    if env.is_main:  # one process checks/claims the folder; the others wait for its verdict
        identity = identity_of(job, sha256_file(meta["weights_file"]), tok_id.weights, labels, size, device)
        info = {
            **manifest("mirai-samples", job.seed),
            "checkpoint": str(job.checkpoint), "tokenizer": tok_path, "step": meta.get("step"),
            "gpt_config": gpt_cfg.to_dict(), "plan": _plan_name(job), "shard_size": job.shard_size,
            "batch_size": job.batch_size, "options": asdict(job.options),
        }
        try:
            source = Path(job.checkpoint)  # a checkpoint folder is read whole; a run folder's samples/ are not in it
            source = find_checkpoint_dir(source) if source.is_dir() else source
            resumed = outputs.prepare_output(out_dir, identity, info, {"checkpoint": source, "tokenizer": tok_path})
        except MiraiError as e:
            problem = str(e)
            release(out_dir)
    problem = _share(problem, env)
    if problem:
        raise MiraiError(problem)

    done = outputs.existing_indices(out_dir, labels)
    mine = [i for shard in shards_of_rank(len(labels), job.shard_size, env.rank, env.world_size) for i in shard]
    todo_total = len(mine)
    finished = int(done[mine].sum()) if mine else 0
    skipped = finished
    log(f"rank {env.rank}: {todo_total} samples in its shards, {skipped} already on disk")
    if progress:
        progress(finished, todo_total)

    t0 = time.perf_counter()
    counted = [finished]

    def written(n: int) -> None:  # from the writer thread, once a batch is on disk
        counted[0] += n
        if progress:
            progress(counted[0], todo_total)

    save = lambda idx, images: outputs.save_images(out_dir, idx, labels, images)  # noqa: E731
    try:
        with ImageWriter(save, out_dir / outputs.IMAGES, written) as writer:
            for shard in shards_of_rank(len(labels), job.shard_size, env.rank, env.world_size):
                for start in range(shard.start, shard.stop, job.batch_size):
                    idx = np.arange(start, min(shard.stop, start + job.batch_size))
                    if done[idx].all():
                        continue
                    images = _sample_batch(gpt, vq, labels[idx], job, batch_seed(job.seed, start), device)
                    missing = ~done[idx]
                    writer.put(idx[missing], images[missing])
    finally:
        gpt.free_cache()
    generated = writer.written
    seconds = time.perf_counter() - t0

    barrier(env)
    npz = grid = None
    problem = ""
    if env.is_main:  # assemble once every rank has finished its shards
        try:
            npz, grid = _finish(out_dir, labels, size, job, log)
        except MiraiError as e:
            problem = str(e)
    problem = _share(problem, env)
    if env.is_main:
        release(out_dir)
    if problem:
        raise MiraiError(problem)
    return SampleResult(out_dir, len(labels), generated, skipped, seconds, npz, grid, resumed)


@torch.no_grad()
def _sample_batch(gpt: GPT, vq: Any, labels: np.ndarray, job: SampleJob, seed: int, device: torch.device) -> np.ndarray:
    gen = torch.Generator(device=device).manual_seed(seed)
    y = torch.from_numpy(labels).to(device)
    codes = generate(gpt, y, job.options, generator=gen, keep_cache=True)
    # The VQ decoder runs in float32 (as LlamaGen's sampler does): small cost next to the GPT, best fidelity.
    return to_uint8(vq.decode_codes(codes, grid=gpt.cfg.grid))


def _finish(out_dir: Path, labels: np.ndarray, size: tuple[int, int], job: SampleJob,
            log: Callable[[str], None]) -> tuple[Path | None, Path | None]:
    missing = np.flatnonzero(~outputs.existing_indices(out_dir, labels))
    if missing.size:
        raise MiraiError(f"{missing.size} samples are still missing in {out_dir} (first: "
                         f"{outputs.image_name(int(missing[0]), int(labels[missing[0]]))}): run the job again to finish")
    npz = grid = None
    if job.write_npz:
        if not outputs.npz_is_current(out_dir, len(labels)):
            log(f"writing {out_dir / outputs.NPZ}")
            outputs.write_npz(out_dir, labels, size)
        npz = out_dir / outputs.NPZ
    if job.grid_images > 0:
        grid = outputs.write_grid(out_dir, labels, job.grid_images)
    return npz, grid


def _plan_name(job: SampleJob) -> str:
    if job.classes is not None:
        return f"list of {len(job.classes)}"
    if job.random_classes is not None:
        return f"{job.random_classes} uniformly random"
    return f"{job.per_class} per class"


def _share(message: str, env: DistEnv) -> str:
    """Rank 0's message on every rank (so that every rank stops together)."""
    return str(broadcast_object(message, env))
