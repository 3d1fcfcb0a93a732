"""Run a study: shared data, then for every variant train -> (at each evaluation step) sample -> evaluate.

Layout of a study folder:
    study.json                    the axis, the variants and their overrides (checked on a rerun)
    runs/<variant>/               a normal run folder (preset.toml, checkpoints, metrics.jsonl)
    runs/<variant>/evals.jsonl    one line per evaluation step: {"step", "metrics", "names", ...}
    runs/<variant>/samples/step_XXXXXXXX/   the class-balanced samples that were evaluated
    report.md / report.csv / report.json / convergence.png / grid_<variant>.png

Everything resumes: a finished evaluation is never redone, an interrupted variant continues from its last
checkpoint, and the shared tokenizer, token store and teacher-feature cache are built once.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from mirai_cli.ablate.axes import Variant, differing_fields, expand
from mirai_cli.config import MiraiConfig, load_config
from mirai_cli.data.store import TokenStore
from mirai_cli.engine.batches import duration_to_steps
from mirai_cli.engine.trainer import train
from mirai_cli.errors import MiraiError
from mirai_cli.evaluation import cache_reference, evaluate
from mirai_cli.evaluation.from_config import eval_settings_from_config
from mirai_cli.evaluation.nll import validation_nll
from mirai_cli.files.atomic import write_json
from mirai_cli.gpt.checkpoint import latest_checkpoint, list_checkpoints, load_gpt_checkpoint
from mirai_cli.metrics.log import read_metrics
from mirai_cli.sampling import run_sample_job
from mirai_cli.sampling.from_config import sample_job_from_config
from mirai_cli.tokenizer.from_config import validation_store_path

Log = Callable[[str], None]


@dataclasses.dataclass
class Study:
    root: Path
    axis: str
    variants: list[Variant]

    def run_dir(self, variant: Variant) -> Path:
        return self.root / "runs" / variant.name

    def evals_path(self, variant: Variant) -> Path:
        return self.run_dir(variant) / "evals.jsonl"


def plan_study(
    presets: Sequence[str],
    overrides: Sequence[str],
    axis: str,
    values: Optional[Sequence[Any]] = None,
    out_dir: Optional[Path] = None,
) -> Study:
    """Expand the axis and fix every variant's run folder inside the study folder."""
    base = load_config(list(presets), list(overrides))
    variants = expand(presets, overrides, axis, values, baseline_seeds=base.ablate.baseline_seeds)
    root = Path(out_dir) if out_dir else Path(base.ablate.out_dir.format(axis=axis))
    placed = []
    for v in variants:
        run = root / "runs" / v.name
        config = v.config.model_copy(deep=True)  # type: ignore[union-attr]
        config.train.run_dir = str(run)
        placed.append(dataclasses.replace(v, overrides=v.overrides + (f'train.run_dir="{run}"',), config=config))
    check_extractor_is_not_a_teacher(placed)
    return Study(root=root, axis=axis, variants=placed)


def check_extractor_is_not_a_teacher(variants: Sequence[Variant]) -> None:
    """A Mirai-I teacher judged by its own features would flatter itself."""
    for v in variants:
        cfg = v.config
        assert cfg is not None
        if cfg.foresight.source == "encoder" and cfg.foresight.encoder == cfg.eval.extractor:
            raise MiraiError(
                f"variant {v.label}: the evaluation extractor {cfg.eval.extractor} is also the Mirai-I teacher; "
                "choose another with --set eval.extractor=... (e.g. inception-v3-compat or efficientnet-lite2)"
            )


def evaluation_steps(config: MiraiConfig, total_steps: int, steps_per_epoch: float) -> list[int]:
    every = config.train.eval_every
    if every is None:
        return [total_steps]
    interval = max(1, duration_to_steps(every, steps_per_epoch))
    steps = list(range(interval, total_steps + 1, interval))
    return steps if steps and steps[-1] == total_steps else steps + [total_steps]


def write_study_file(study: Study, presets: Sequence[str], overrides: Sequence[str]) -> None:
    study.root.mkdir(parents=True, exist_ok=True)
    record = {
        "axis": study.axis, "presets": list(presets), "overrides": list(overrides),
        "variants": [{"name": v.name, "label": v.label, "value": v.axis_value, "seed": v.seed,
                      "overrides": list(v.overrides)} for v in study.variants],
        "differing_fields": differing_fields(study.variants),
    }
    path = study.root / "study.json"
    if path.is_file():
        old = json.loads(path.read_text())
        old_names = {item["name"]: item["overrides"] for item in old.get("variants", [])}
        for item in record["variants"]:
            if item["name"] in old_names and old_names[item["name"]] != item["overrides"]:
                raise MiraiError(
                    f"{study.root} holds a study whose variant {item['name']} was run with other settings; "
                    "use another --out folder (nothing was overwritten)"
                )
    write_json(path, record)


def read_evals(path: Path) -> dict[int, dict[str, Any]]:
    return {int(r["step"]): r for r in read_metrics(path)}


def run_variant(study: Study, variant: Variant, progress: bool, log: Log) -> list[dict[str, Any]]:
    """Train the variant to each evaluation step, sample class-balanced images there, evaluate them."""
    config = variant.config
    assert config is not None
    store = TokenStore.open(config.data.store)
    steps_per_epoch = len(store) / config.train.global_batch_size
    total = duration_to_steps(config.train.duration, steps_per_epoch)
    run_dir = study.run_dir(variant)
    done = read_evals(study.evals_path(variant))
    settings, reference = eval_settings_from_config(config)
    val_path = validation_store_path(config)
    val_store = TokenStore.open(val_path) if val_path is not None else None
    for step in evaluation_steps(config, total, steps_per_epoch):
        if step in done:
            continue
        latest = latest_checkpoint(run_dir)
        if latest is None or latest[0] < step:
            log(f"[{variant.name}] train to step {step}/{total}")
            if train(config, resume=latest is not None, run_dir=run_dir, stop_at=step, progress=progress).interrupted:
                raise KeyboardInterrupt  # Ctrl-C: stop the study (exit 130); the rerun trains on to this round
        folder = dict((s, f) for s, f in list_checkpoints(run_dir)).get(step)
        if folder is None:
            log(f"[{variant.name}] no checkpoint at step {step} (a later one exists); skipping that evaluation")
            continue
        record = {"step": step, **evaluate_checkpoint(config, folder, run_dir / "samples" / f"step_{step:08d}",
                                                      settings, reference, val_store, variant.name)}
        with open(study.evals_path(variant), "a") as handle:
            handle.write(json.dumps(record) + "\n")
        done[step] = record
        log(f"[{variant.name}] step {step}: " + ", ".join(f"{record['names'][k]} {v:.4g}" for k, v in record["values"].items()
                                                          if k in ("fid", "val_nll", "isc_mean", "precision", "recall")))
    return [done[s] for s in sorted(done)]


def evaluate_checkpoint(config: MiraiConfig, folder: Path, samples_dir: Path, settings: Any, reference: Any,
                        val_store: Optional[TokenStore], name: str) -> dict[str, Any]:
    """One evaluation round of a checkpoint: the validation NLL (when there is a validation store) and, when
    ablate.eval_samples_per_class > 0, class-balanced samples scored against the reference."""
    values: dict[str, float] = {}
    names: dict[str, str] = {}
    record: dict[str, Any] = {}
    t0 = time.perf_counter()
    if val_store is not None:
        from mirai_cli.runtime.device import resolve_device, resolve_precision

        # Where and how train() ran the run in this process (its device "auto", its train.precision): a GPT-B's
        # validation pass in fp32 on a CPU takes tens of minutes.
        device = resolve_device("auto")
        precision = resolve_precision(config.train.precision, device)
        model, _, _ = load_gpt_checkpoint(folder, weights=config.sample.weights, device=device)
        values["val_nll"] = validation_nll(model, val_store, precision=precision)
        names["val_nll"] = "val NLL"
        record.update(val_s=time.perf_counter() - t0, val_device=device.type, val_precision=precision)
    if config.ablate.eval_samples_per_class > 0:
        job = sample_job_from_config(config, str(folder), out_dir=str(samples_dir),
                                     per_class=config.ablate.eval_samples_per_class)
        t1 = time.perf_counter()
        sampled = run_sample_job(job)
        t2 = time.perf_counter()
        result = evaluate(sampled.npz, reference, settings)
        if not result.ok:
            raise MiraiError(f"[{name}] evaluation of {folder} failed: {result.failed}")
        values.update(result.values)
        names.update(result.names)
        record.update(samples=sampled.total, extractor=result.extractor.get("name"), sample_s=t2 - t1,
                      eval_s=time.perf_counter() - t2)
    if not values:
        raise MiraiError("nothing to evaluate: set ablate.eval_samples_per_class > 0 or data.val_images > 0")
    return {"values": values, "names": names, **record}


def run_study(
    study: Study,
    presets: Sequence[str],
    overrides: Sequence[str],
    *,
    prepare_data: Optional[Callable[[MiraiConfig], None]] = None,
    progress: bool = True,
    log: Log = print,
    only: Optional[str] = None,
    jobs: int = 1,
    values: Optional[Sequence[Any]] = None,
) -> dict[str, list[dict[str, Any]]]:
    """Run the variants (all, or `only` one) and return variant name -> evaluation records.

    jobs > 1 runs that many variants at once, each in its own `mirai ablate --only` process, pinned to one GPU
    when GPUs are visible (variant i on GPU i % count). Data (tokenizer, store, teacher cache) is prepared once
    first, so the processes only read it."""
    write_study_file(study, presets, overrides)
    chosen = [v for v in study.variants if only is None or v.name == only]
    if only is not None and not chosen:
        raise MiraiError(f"no variant named {only!r} in this study; variants: {', '.join(v.name for v in study.variants)}")
    if prepare_data is not None:
        prepare_data(study.variants[0].config)  # type: ignore[arg-type]
        prepare_teacher_caches(chosen, progress)
    if jobs > 1 and len(chosen) > 1:
        prepare_references(chosen, log)
        run_in_processes(study, chosen, presets, overrides, values, jobs, log)
        return {v.name: [record for _, record in sorted(read_evals(study.evals_path(v)).items())] for v in chosen}
    results = {}
    for variant in chosen:
        results[variant.name] = run_variant(study, variant, progress, log)
    return results


def prepare_references(variants: Sequence[Variant], log: Log = print) -> None:
    """Cache each distinct evaluation reference's features once, before parallel variants would each extract
    them at their first evaluation."""
    seen = set()
    for variant in variants:
        if variant.config.ablate.eval_samples_per_class <= 0:  # type: ignore[union-attr]
            continue
        settings, reference = eval_settings_from_config(variant.config)  # type: ignore[arg-type]
        if (repr(settings), reference) not in seen:
            seen.add((repr(settings), reference))
            if cache_reference(reference, settings):
                log(f"evaluation reference {reference}: features extracted once for the parallel variants")


def prepare_teacher_caches(variants: Sequence[Variant], progress: bool = True) -> None:
    """Build every cached Mirai-I teacher the variants need, once, before any of them trains (parallel variants
    would otherwise race to build the same cache)."""
    from mirai_cli.foresight.teachers.build import ensure_feature_cache
    from mirai_cli.runtime.device import resolve_device

    for variant in variants:
        fc = variant.config.foresight  # type: ignore[union-attr]
        if fc.source == "encoder" and fc.cache_teacher:
            store = TokenStore.open(variant.config.data.store)  # type: ignore[union-attr]
            ensure_feature_cache(variant.config, store, resolve_device("auto"), progress)  # type: ignore[arg-type]


def run_in_processes(
    study: Study, variants: Sequence[Variant], presets: Sequence[str], overrides: Sequence[str],
    values: Optional[Sequence[Any]], jobs: int, log: Log,
) -> None:
    import os
    import subprocess
    import sys

    import torch

    gpus = torch.cuda.device_count()
    base = [sys.executable, "-m", "mirai_cli", "ablate", "--axis", study.axis, "--out", str(study.root), "--quiet"]
    for preset in presets:
        base += ["--preset", preset]
    for item in overrides:
        base += ["--set", item]
    if values:
        base += ["--values", ",".join(str(v) for v in values)]
    pending = list(enumerate(variants))
    running: list[tuple[Variant, subprocess.Popen, Any]] = []
    failed: list[str] = []
    while pending or running:
        while pending and len(running) < jobs:
            i, variant = pending.pop(0)
            env = dict(os.environ)
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = str(i % gpus)
            log_path = study.run_dir(variant).parent / f"{variant.name}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(log_path, "w")
            where = f"GPU {i % gpus}" if gpus else "CPU"
            log(f"[{variant.name}] started on {where} (log: {log_path})")
            running.append((variant, subprocess.Popen(base + ["--only", variant.name], env=env, stdout=handle,
                                                      stderr=subprocess.STDOUT), handle))
        try:
            time.sleep(0.5)
        except KeyboardInterrupt:  # the variants got Ctrl-C too (or get it now): let them save, then stop
            for _, proc, _ in running:
                proc.send_signal(signal.SIGINT)
                proc.wait()
            raise
        for item in list(running):
            variant, proc, handle = item
            if proc.poll() is not None:
                handle.close()
                running.remove(item)
                if proc.returncode != 0:
                    failed.append(variant.name)
                log(f"[{variant.name}] finished (exit {proc.returncode})")
    if failed:
        raise MiraiError(f"variants {', '.join(failed)} failed; see {study.root / 'runs'}/<variant>.log, then rerun "
                         "the same command (finished work is kept)")
