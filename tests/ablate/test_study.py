"""A real (tiny) study end to end: train -> sample -> evaluate at each evaluation step -> report; a rerun
skips what is finished."""

import json

import pytest
from mirai_testdata import tiny_overrides

from mirai_cli.ablate.report import write_report
from mirai_cli.ablate.runner import plan_study, prepare_references, run_study
from mirai_cli.evaluation import evaluate
from mirai_cli.evaluation.from_config import eval_settings_from_config
from mirai_cli.tokenizer.from_config import encode_from_config


def study_overrides(tiny_store, tmp_path, **extra):
    return tiny_overrides(tiny_store, tmp_path / "unused", **{
        "train.duration": 4, "train.eval_every": 2, "train.ckpt_every": 2, "ablate.eval_samples_per_class": 3,
        "eval.reference": str(tiny_store["npz"]), "tokenizer.checkpoint": str(tiny_store["tokenizer"]), "eval.extractor": "efficientnet-lite0",
        "eval.kid_subset_size": 6, "eval.isc_splits": 2, "eval.batch_size": 12, "ablate.baseline_seeds": 1,
        "ablate.seeds": [0], **extra,
    })


@pytest.mark.slow
def test_tiny_study_report_has_every_column_and_a_rerun_skips_finished_work(tiny_store, tmp_path):
    overrides = study_overrides(tiny_store, tmp_path, **{
        "data.source": str(tiny_store["npz"]), "data.val_images": 16, "data.val_store": str(tmp_path / "val"),
        "ablate.baseline_seeds": 2})
    study = plan_study(["tiny"], overrides, "source", ["ema"], tmp_path / "study")
    assert [v.name for v in study.variants] == ["baseline", "baseline-s1", "source-ema"]
    encode_from_config(study.variants[0].config, show_progress=False, validation=True)
    results = run_study(study, progress=False, log=lambda m: None)
    assert [r["step"] for r in results["baseline"]] == [2, 4]
    assert all(r["values"]["val_nll"] > 0 for recs in results.values() for r in recs)
    report = write_report(study.root, study.variants, results, "source")
    md = (study.root / "report.md").read_text()
    for column in ["variant", "source", "seeds", "FD-effnet-lite0 mean ± sd", "FD-effnet-lite0 95% CI",
                   "val NLL mean ± sd", "val NLL 95% CI", "IS-effnet-lite0", "KD-effnet-lite0", "Precision",
                   "Recall", "@2", "@4", "paired gain FD-effnet-lite0 [95% CI]",
                   "speed-up FD-effnet-lite0 per pair [95% CI]", "paired gain val NLL [95% CI]",
                   "speed-up val NLL per pair [95% CI]", "Runs:"]:
        assert column in md, (column, md)
    csv_header = (study.root / "report.csv").read_text().splitlines()[0]
    assert "speed-up val NLL per pair [95% CI]" in csv_header
    data = json.loads((study.root / "report.json").read_text())
    assert [row["variant"] for row in data["rows"]] == ["baseline", "source-ema"]
    assert {run["variant"] for run in data["runs"]} == {"baseline", "baseline-s1", "source-ema"}
    assert data["paired"] is True  # source-ema's seed 0 has a baseline run on seed 0
    for run in data["runs"]:  # every evaluation of every run, every metric: a later analysis needs no run folder
        assert [e["step"] for e in run["evals"]] == [2, 4]
        assert {"fid", "val_nll", "precision"} <= set(run["evals"][0]["values"])
    base = report["rows"][0]
    assert base["seeds"] == [0, 1] and base["fid"]["n"] == 2 and base["fid"]["sd"] is not None
    assert base["fid"]["ci95"][0] <= base["fid"]["mean"] <= base["fid"]["ci95"][1]
    assert set(base["val_nll_by_step"]) == {2, 4}
    # the baseline's own mean curve reaches its final mean at the last step, or earlier
    assert 2 <= base["fid_reach"]["steps"] <= 4 and 2 <= base["val_nll_reach"]["steps"] <= 4
    assert (study.root / "convergence.png").stat().st_size > 1000
    assert (study.root / "grid_baseline.png").is_file() and (study.root / "grid_source-ema.png").is_file()

    # A rerun finds everything done: no training, no sampling, no evaluation.
    stamps = {p: p.stat().st_mtime_ns for p in study.root.rglob("*.safetensors")}
    evals = (study.root / "runs" / "baseline" / "evals.jsonl").read_text()
    again = run_study(study, progress=False, log=lambda m: None)
    assert again == results
    assert {p: p.stat().st_mtime_ns for p in study.root.rglob("*.safetensors")} == stamps
    assert (study.root / "runs" / "baseline" / "evals.jsonl").read_text() == evals


@pytest.mark.slow
def test_an_interrupted_variant_resumes_from_its_checkpoint(tiny_store, tmp_path):
    overrides = study_overrides(tiny_store, tmp_path)
    study = plan_study(["tiny"], overrides, "source", ["ema"], tmp_path / "study")
    # Simulate an interruption: the baseline trained to step 2 but nothing was evaluated yet.
    from mirai_cli.engine.trainer import train

    train(study.variants[0].config, stop_at=2, progress=False)
    results = run_study(study, progress=False, log=lambda m: None)
    assert [r["step"] for r in results["baseline"]] == [2, 4]
    metrics = [json.loads(line) for line in (study.root / "runs" / "baseline" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]  # steps 1-2 once, then 3-4 after the resume


@pytest.mark.slow
def test_variants_in_parallel_processes_give_the_same_numbers(tiny_store, tmp_path):
    """--jobs 2 runs each variant in its own `mirai ablate --only` process; training is deterministic, so the
    numbers equal a sequential study's."""
    overrides = study_overrides(tiny_store, tmp_path) + ["train.duration=2", "train.eval_every=2"]
    sequential = plan_study(["tiny"], overrides, "source", ["ema"], tmp_path / "seq")
    a = run_study(sequential, progress=False, log=lambda m: None)
    parallel = plan_study(["tiny"], overrides, "source", ["ema"], tmp_path / "par")
    b = run_study(parallel, progress=False, log=lambda m: None, jobs=2)
    assert set(b) == {"baseline", "source-ema"}
    assert set(a) == set(b)
    for name in a:  # the child processes use torch's default thread count: float sums differ in the last bits
        assert len(a[name]) == len(b[name]) > 0, name
        for ra, rb in zip(a[name], b[name]):
            assert ra["step"] == rb["step"]
            assert ra["values"]["fid"] == pytest.approx(rb["values"]["fid"], rel=0.02)
    assert (tmp_path / "par" / "runs" / "baseline.log").is_file()


def test_parallel_variants_get_the_reference_features_extracted_once_first(tiny_store, tmp_path, monkeypatch):
    """Before `--jobs N` processes start, the evaluation reference is extracted once into the cache (each
    process would otherwise extract the same images at its first evaluation)."""
    monkeypatch.setenv("MIRAI_CACHE", str(tmp_path / "cache"))
    study = plan_study(["tiny"], study_overrides(tiny_store, tmp_path), "source", ["ema"], tmp_path / "study")
    lines: list[str] = []
    prepare_references(study.variants, lines.append)
    prepare_references(study.variants, lines.append)  # cached now: nothing extracted, nothing said
    assert len(lines) == 1 and str(tiny_store["npz"]) in lines[0]
    settings, reference = eval_settings_from_config(study.variants[0].config)
    result = evaluate(tiny_store["npz"], reference, settings)
    assert result.ok and result.reference["fid_statistics"] == "cache" and result.reference["features"] == ["cache"]
