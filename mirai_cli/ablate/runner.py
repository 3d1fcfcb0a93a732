"""Run a study: shared data, then for every variant train -> (at each evaluation step) sample -> evaluate.

Layout of a study folder:
    study.json                    the axis or study file, the variants and their overrides (checked on a rerun)
    runs/<variant>/               a normal run folder (preset.toml, checkpoints, metrics.jsonl)
    runs/<variant>/evals.jsonl    one line per evaluation step: {"step", "metrics", "names", ...}
    runs/<variant>/samples/step_XXXXXXXX/   the class-balanced samples that were evaluated
    report.md / report.csv / report.json / convergence.png / grid_<variant>.png
    reports/<baseline>/report.md ...   the same, per baseline, for a study file (ablate/study_file.py)

Everything resumes: a finished evaluation is never redone, an interrupted variant continues from its last
checkpoint, and the shared tokenizer, token store and teacher-feature cache are built once. A study file's
variant may continue another's finished run (same seed): its last checkpoint and evaluations are copied, then it
trains on.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from mirai_cli.ablate.axes import Variant, differing_fields, expand, flat_settings
from mirai_cli.ablate.report import write_report
from mirai_cli.ablate.rows import append_row, run_row
from mirai_cli.ablate.study_file import StudyFile, read_study_file, study_variants
from mirai_cli.config import MiraiConfig, load_config
from mirai_cli.data.store import TokenStore
from mirai_cli.engine.batches import duration_to_steps
from mirai_cli.engine.checkpoints import read_meta
from mirai_cli.engine.run_dir import MANIFEST_FILE, PRESET_FILE
from mirai_cli.engine.trainer import train
from mirai_cli.errors import MiraiError
from mirai_cli.evaluation import cache_reference, evaluate
from mirai_cli.evaluation.from_config import eval_settings_from_config
from mirai_cli.evaluation.nll import validation_nll
from mirai_cli.files.atomic import atomic_path, write_json
from mirai_cli.files.locks import check_not_an_input
from mirai_cli.gpt.checkpoint import latest_checkpoint, list_checkpoints, load_gpt_checkpoint
from mirai_cli.metrics.log import read_metrics
from mirai_cli.sampling import run_sample_job
from mirai_cli.sampling.from_config import sample_job_from_config
from mirai_cli.tokenizer.from_config import tokenizer_location, validation_store_path

Log = Callable[[str], None]


@dataclasses.dataclass
class Study:
    root: Path
    axis: str  # the axis, or the study file's name
    variants: list[Variant]
    argv: list[str]  # the `mirai ablate` arguments that plan this study again (for --jobs processes)
    record: dict[str, Any]  # how it was planned, for study.json
    study_file: Optional[StudyFile] = None

    def run_dir(self, variant: Variant) -> Path:
        return self.root / "runs" / variant.name

    def evals_path(self, variant: Variant) -> Path:
        return self.run_dir(variant) / "evals.jsonl"

    def sources(self) -> list[Variant]:
        """The runs that variants continue (run first; not reported)."""
        return list({v.continues.name: v.continues for v in self.variants if v.continues is not None}.values())


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
    placed = [place(v, root) for v in variants]
    check_variants(placed, root)
    argv = ["--axis", axis, *_options("--preset", presets), *_options("--set", overrides),
            *(["--values", ",".join(str(v) for v in values)] if values else []), "--out", str(root)]
    return Study(root, axis, placed, argv, {"axis": axis, "presets": list(presets), "overrides": list(overrides)})


def plan_study_file(path: Path, names: Optional[Sequence[str]], overrides: Sequence[str],
                    out_dir: Optional[Path] = None) -> Study:
    """A study file's variants (the named ones and their baselines) on each seed, placed in the study folder
    (default: ablate.out_dir with {axis} = the file's name)."""
    study_file = read_study_file(path)
    variants = study_variants(study_file, names, overrides)
    root = Path(out_dir) if out_dir else Path(variants[0].config.ablate.out_dir.format(axis=study_file.name))  # type: ignore[union-attr]
    placed = [place(v, root) for v in variants]
    check_variants(placed, root)
    argv = ["--study", str(path), *(["--variants", ",".join(names)] if names else []),
            *_options("--set", overrides), "--out", str(root)]
    record = {"study": str(path), "presets": study_file.presets,
              "settings": [f"{k}={json.dumps(v)}" for k, v in flat_settings(study_file.settings).items()],
              "overrides": list(overrides)}
    return Study(root, study_file.name, placed, argv, record, study_file)


def _options(flag: str, items: Sequence[Any]) -> list[str]:
    return [part for item in items for part in (flag, str(item))]


def place(variant: Variant, root: Path) -> Variant:
    """The variant (and the run it continues) with its run folder inside the study folder."""
    run = root / "runs" / variant.name
    config = variant.config.model_copy(deep=True)  # type: ignore[union-attr]
    config.train.run_dir = str(run)
    source = place(variant.continues, root) if variant.continues is not None else None
    return dataclasses.replace(variant, overrides=variant.overrides + (f'train.run_dir="{run}"',), config=config,
                               continues=source)


def check_variants(variants: Sequence[Variant], root: Path) -> None:
    """What would fail or make a study's numbers meaningless is refused when it is planned, before anything is
    written: an output folder that is an input or inside one (the study folder `root`, which holds the run
    folders; the tokenizer and the store the study prepares), nothing to evaluate, or a Mirai-I teacher judged
    by its own features (it would flatter itself)."""
    for v in variants:
        cfg = v.config
        assert cfg is not None
        tokenizer_file = tokenizer_location(cfg)
        source, tokenizer = {"data.source": cfg.data.source}, {"tokenizer.checkpoint": tokenizer_file}
        check_not_an_input(root, {**source, **tokenizer, "data.store": cfg.data.store,
                                  "data.val_store": validation_store_path(cfg), "eval.reference": cfg.eval.reference})
        check_not_an_input(tokenizer_file, source)
        check_not_an_input(cfg.data.store, {**source, **tokenizer})
        if nothing_to_evaluate(cfg):
            raise MiraiError(f"variant {v.label}: {NOTHING_TO_EVALUATE}")
        if cfg.foresight.source == "encoder" and cfg.foresight.encoder == cfg.eval.extractor:
            raise MiraiError(
                f"variant {v.label}: the evaluation extractor {cfg.eval.extractor} is also the Mirai-I teacher; "
                "choose another with --set eval.extractor=... (e.g. inception-v3-compat or efficientnet-lite2)"
            )


NOTHING_TO_EVALUATE = "nothing to evaluate: set ablate.eval_samples_per_class > 0 or data.val_images > 0"


def nothing_to_evaluate(config: MiraiConfig) -> bool:
    """An evaluation round scores samples (ablate.eval_samples_per_class) and/or the validation NLL (a validation
    store, data.val_images): with neither, a study would train and report nothing."""
    return config.ablate.eval_samples_per_class <= 0 and validation_store_path(config) is None


def evaluation_steps(config: MiraiConfig, total_steps: int, steps_per_epoch: float) -> list[int]:
    every = config.train.eval_every
    if every is None:
        return [total_steps]
    interval = max(1, duration_to_steps(every, steps_per_epoch))
    steps = list(range(interval, total_steps + 1, interval))
    return steps if steps and steps[-1] == total_steps else steps + [total_steps]


def write_study_file(study: Study) -> None:
    """study.json: how the study was planned and every variant run in its folder so far (a rerun that would
    run a variant with other settings stops)."""
    study.root.mkdir(parents=True, exist_ok=True)
    variants = [{"name": v.name, "label": v.label, "value": v.axis_value, "seed": v.seed,
                 "overrides": list(v.overrides)} for v in [*study.sources(), *study.variants]]
    path = study.root / "study.json"
    old = json.loads(path.read_text()).get("variants", []) if path.is_file() else []
    old_names = {item["name"]: item["overrides"] for item in old}
    for item in variants:
        if item["name"] in old_names and old_names[item["name"]] != item["overrides"]:
            raise MiraiError(
                f"{study.root} holds a study whose variant {item['name']} was run with other settings; "
                "use another --out folder (nothing was overwritten)"
            )
    names = {item["name"] for item in variants}
    write_json(path, {**study.record, "variants": [item for item in old if item["name"] not in names] + variants,
                      "differing_fields": differing_fields(study.variants)})


def read_evals(path: Path) -> dict[int, dict[str, Any]]:
    return {int(r["step"]): r for r in read_metrics(path)}


def run_variant(study: Study, variant: Variant, progress: bool, log: Log) -> list[dict[str, Any]]:
    """Train the variant to each evaluation step, sample class-balanced images there, evaluate them."""
    config = variant.config
    assert config is not None
    total, steps = variant_steps(config)
    run_dir = study.run_dir(variant)
    if variant.continues is not None:
        continue_run(study, variant, log)
    done = read_evals(study.evals_path(variant))
    settings, reference = eval_settings_from_config(config)
    val_path = validation_store_path(config)
    val_store = TokenStore.open(val_path) if val_path is not None else None
    for step in steps:
        if step in done:
            continue
        latest = latest_checkpoint(run_dir)
        t0 = time.perf_counter()
        if latest is None or latest[0] < step:
            log(f"[{variant.name}] train to step {step}/{total}")
            if train(config, resume=latest is not None, run_dir=run_dir, stop_at=step, progress=progress).interrupted:
                raise KeyboardInterrupt  # Ctrl-C: stop the study (exit 130); the rerun trains on to this round
        train_s = time.perf_counter() - t0
        folder = dict((s, f) for s, f in list_checkpoints(run_dir)).get(step)
        if folder is None:
            log(f"[{variant.name}] no checkpoint at step {step} (a later one exists); skipping that evaluation")
            continue
        record = {"step": step, **evaluate_checkpoint(config, folder, run_dir / "samples" / f"step_{step:08d}",
                                                      settings, reference, val_store, variant.name),
                  "train_s": train_s}
        with open(study.evals_path(variant), "a") as handle:
            handle.write(json.dumps(record) + "\n")
        done[step] = record
        log(f"[{variant.name}] step {step}: " + ", ".join(f"{record['names'][k]} {v:.4g}" for k, v in record["values"].items()
                                                          if k in ("fid", "val_nll", "isc_mean", "precision", "recall")))
    return [done[s] for s in sorted(done)]


def variant_steps(config: MiraiConfig) -> tuple[int, list[int]]:
    """A variant's length in steps and its evaluation steps."""
    steps_per_epoch = len(TokenStore.open(config.data.store)) / config.train.global_batch_size
    total = duration_to_steps(config.train.duration, steps_per_epoch)
    return total, evaluation_steps(config, total, steps_per_epoch)


def is_finished(study: Study, variant: Variant) -> bool:
    """Every evaluation of the variant's run is done."""
    _, steps = variant_steps(variant.config)  # type: ignore[arg-type]
    return set(steps) <= set(read_evals(study.evals_path(variant)))


def continue_run(study: Study, variant: Variant, log: Log) -> None:
    """Start a variant from the finished run it continues (same seed): that run's evaluations, metrics, preset
    and last checkpoint are copied into its folder, once; training then resumes from there. The checkpoint goes
    last and whole (copied aside, then renamed): a copy cut short is redone, never taken as a start."""
    run_dir, source = study.run_dir(variant), variant.continues
    assert source is not None
    if latest_checkpoint(run_dir) is not None:
        return
    if not is_finished(study, source):
        raise MiraiError(f"[{variant.name}] continues {source.name}, which has not finished: run that variant first")
    source_dir = study.run_dir(source)
    step, last = list_checkpoints(source_dir)[-1]
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in ("evals.jsonl", "metrics.jsonl", PRESET_FILE, MANIFEST_FILE):
        if (source_dir / name).is_file():
            with atomic_path(run_dir / name) as tmp:
                shutil.copyfile(source_dir / name, tmp)
    aside = run_dir / "checkpoints" / f"copy-{last.name}"
    shutil.rmtree(aside, ignore_errors=True)
    shutil.copytree(last, aside)
    aside.rename(run_dir / "checkpoints" / last.name)
    log(f"[{variant.name}] continues {source.name} from its step {step}")


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
        raise MiraiError(NOTHING_TO_EVALUATE)
    return {"values": values, "names": names, **record}


def run_study(
    study: Study,
    *,
    prepare_data: Optional[Callable[[MiraiConfig], None]] = None,
    progress: bool = True,
    log: Log = print,
    only: Optional[str] = None,
    jobs: int = 1,
) -> dict[str, list[dict[str, Any]]]:
    """Run the variants (all, or `only` one) and return variant name -> evaluation records.

    jobs > 1 runs that many variants at once, each in its own `mirai ablate --only` process, pinned to one GPU
    when GPUs are visible (variant i on GPU i % count). Data (tokenizer, stores, teacher caches) is prepared
    once first, so the processes only read it. The runs that variants continue go first."""
    write_study_file(study)
    everything = [*study.sources(), *study.variants]
    if only is not None:
        chosen = [v for v in everything if v.name == only][:1]
        if not chosen:
            raise MiraiError(f"no variant named {only!r} in this study; variants: {', '.join(v.name for v in everything)}")
    else:
        chosen = study.variants
    if prepare_data is not None:
        for config in {v.config.data.store: v.config for v in everything}.values():  # type: ignore[union-attr]
            prepare_data(config)  # type: ignore[arg-type]
        prepare_teacher_caches(everything, progress)
    results = {}
    for wave in (study.sources() if only is None else [], chosen):
        if jobs > 1 and len(wave) > 1:
            prepare_references(wave, log)
            run_in_processes(study, wave, jobs, log)
            results.update({v.name: [r for _, r in sorted(read_evals(study.evals_path(v)).items())] for v in wave})
            continue
        for variant in wave:
            results[variant.name] = run_variant(study, variant, progress, log)
            record_row(study, variant, results[variant.name])
    return {v.name: results[v.name] for v in chosen}


def record_row(study: Study, variant: Variant, records: list[dict[str, Any]]) -> None:
    """A study file's finished run, appended once to the rows file it names (docs/study_rows.jsonl)."""
    if study.study_file is None or study.study_file.rows is None or not is_finished(study, variant):
        return
    found = latest_checkpoint(study.run_dir(variant))
    tokenizer = (read_meta(found[1]).get("tokenizer") or {}).get("sha256") if found else None
    append_row(Path(study.study_file.rows), run_row(study.study_file.path, variant, records, tokenizer))


def write_reports(study: Study, results: dict[str, list[dict[str, Any]]]) -> list[tuple[Path, dict[str, Any]]]:
    """The report of an axis study in its folder; a study file's, one per baseline in reports/<baseline>/."""
    if study.study_file is None:
        return [(study.root, write_report(study.root, study.variants, results, study.axis))]
    groups: dict[Optional[str], list[Variant]] = {}
    for v in study.variants:
        groups.setdefault(v.compared_with, []).append(v)
    out = []
    for baseline, members in groups.items():
        folder = study.root / "reports" / str(baseline)
        out.append((folder, write_report(study.root, members, results, study.axis, out=folder)))
    return out


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


def run_in_processes(study: Study, variants: Sequence[Variant], jobs: int, log: Log) -> None:
    import os
    import subprocess
    import sys

    import torch

    gpus = torch.cuda.device_count()
    base = [sys.executable, "-m", "mirai_cli", "ablate", *study.argv, "--quiet"]
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
