"""The study report on fixed numbers (no training): the paired design when the arms share seeds, the unpaired one
when they do not, and report.json holding every run's evaluation curve so that the report can be redone from it."""

import json

import pytest

from mirai_cli.ablate.axes import Variant
from mirai_cli.ablate.report import reanalyze, to_markdown, verdicts, write_report
from mirai_cli.ablate.summary import study_summary
from mirai_cli.errors import MiraiError

# Baseline seeds differ by 0.1 nats at the end; Mirai is 0.008-0.012 better than the baseline of its own seed.
BASE = {0: [3.0, 2.6, 2.10], 1: [3.1, 2.7, 2.20], 2: [3.2, 2.8, 2.30]}
MIRAI = {0: [2.9, 2.5, 2.090], 1: [3.0, 2.6, 2.188], 2: [3.1, 2.7, 2.292]}


def records(nll: list[float], fd0: float) -> list[dict]:
    return [{"step": 100 * (i + 1), "values": {"val_nll": v, "fid": fd0 - 10 * i}, "names": {"val_nll": "val NLL",
             "fid": "FD-x"}, "extractor": "x"} for i, v in enumerate(nll)]


def study(mirai_seeds: tuple[int, ...] = (0, 1, 2)) -> tuple[list[Variant], dict]:
    variants = [Variant(f"baseline-s{s}", f"baseline (seed {s})", None, (), s) for s in BASE]
    variants += [Variant(f"source-encoder-s{s}", f"source = encoder (seed {s})", "encoder", (), s) for s in mirai_seeds]
    results = {f"baseline-s{s}": records(c, 100.0) for s, c in BASE.items()}
    results |= {f"source-encoder-s{s}": records(MIRAI[i], 99.0) for i, s in zip(MIRAI, mirai_seeds)}
    return variants, results


def test_shared_seeds_are_paired_and_the_verdict_reads_the_paired_interval(tmp_path):
    report = write_report(tmp_path, *study(), "source")
    assert report["paired"] is True
    base, mirai = report["rows"]
    gain = mirai["val_nll_paired"]["final_gain"]
    assert gain["mean"] == pytest.approx(0.010) and gain["ci95"][0] > 0
    # unpaired, the same numbers say nothing: 0.1 baseline sd, the seed means' intervals overlap
    assert mirai["val_nll"]["ci95"][0] < base["val_nll"]["mean"] < mirai["val_nll"]["ci95"][1]
    lines = verdicts(report)
    nll = next(line for line in lines if "val NLL" in line)
    assert "paired gain at step 300" in nll and "+0.01 [" in nll and "excludes 0: better" in nll
    fd = next(line for line in lines if "FD-x" in line)
    assert "+1 [+1, +1]" in fd  # FD: every seed 1 lower, lower is better
    # the baseline over itself: gain 0, speed-up exactly 1.00 in every pair
    own = base["val_nll_paired"]
    assert own["final_gain"]["mean"] == 0.0 and own["speedup"]["summary"]["mean"] == 1.0
    assert [p["speedup"] for p in own["speedup"]["pairs"]] == [1.0, 1.0, 1.0]
    md = (tmp_path / "report.md").read_text()
    for column in ["paired gain val NLL [95% CI]", "target val NLL", "steps to target val NLL (per pair)",
                   "speed-up val NLL per pair [95% CI]", "Paired design"]:
        assert column in md
    assert "| 1x [1, 1] |" in md


def test_seeds_that_differ_take_the_unpaired_path(tmp_path):
    report = write_report(tmp_path, *study(mirai_seeds=(10, 11, 12)), "source")
    assert report["paired"] is False
    assert report["rows"][1]["val_nll_paired"] is None
    nll = next(line for line in verdicts(report) if "val NLL" in line)
    assert "baseline sd" in nll and "paired" not in nll
    md = to_markdown(report)
    assert "steps to baseline val NLL [95% CI]" in md and "unpaired statistics" in md
    assert report["rows"][0]["val_nll_speedup"]["value"] == 1.0  # the baseline over itself, unpaired too


def test_report_json_holds_every_run_curve_and_the_report_can_be_redone_from_it(tmp_path):
    variants, results = study()
    write_report(tmp_path, variants, results, "source")
    saved = json.loads((tmp_path / "report.json").read_text())
    by_run = {run["variant"]: run for run in saved["runs"]}
    assert set(by_run) == set(results)
    for name, recs in results.items():
        assert by_run[name]["evals"] == [{"step": r["step"], "values": r["values"]} for r in recs]
    # a later analysis from report.json alone (no run folders, no variants) gives the same report
    assert json.loads(json.dumps(reanalyze(saved))) == saved
    # a report.json of an earlier version (finals only) says what to do
    for run in saved["runs"]:
        del run["evals"]
    with pytest.raises(MiraiError, match="rerun the same"):
        reanalyze(saved)


def test_the_terminal_summary_is_short_and_ends_with_the_report_path(tmp_path):
    report = write_report(tmp_path, *study(), "source")
    text = study_summary(report, tmp_path / "report.md")
    lines = text.splitlines()
    assert len(lines) <= 10 and max(map(len, lines[:-1])) <= 100 and "|" not in text  # no 22-column table
    assert lines[-1].startswith(f"full report: {tmp_path / 'report.md'}")
    assert "paired by seed" in text and "2.2 ± 0.1" in text  # the baseline's final val NLL, mean ± sd
    nll = next(line for line in lines if "source-encoder" in line and "val NLL" in line)
    assert "+0.01 [" in nll and "1." in nll.split("]")[1] and nll.endswith("better")
    fd = next(line for line in lines if "source-encoder" in line and "FD-x" in line)
    assert "+1 [+1, +1]" in fd and fd.endswith("better")


def test_the_terminal_summary_of_arms_without_shared_seeds_reads_the_seed_means(tmp_path):
    report = write_report(tmp_path, *study(mirai_seeds=(10, 11, 12)), "source")
    text = study_summary(report, tmp_path / "report.md")
    assert "unpaired" in text
    nll = next(line for line in text.splitlines() if "source-encoder" in line and "val NLL" in line)
    # the same 0.01 gain is lost in the 0.1 spread between seeds when the seeds are not shared
    assert "+0.01 [" in nll and nll.endswith("no difference shown")
    variants, results = study(mirai_seeds=(10,))
    variants = [v for v in variants if v.seed in (0, 10)]
    one = study_summary(write_report(tmp_path / "one", variants, results, "source"), tmp_path / "one/report.md")
    assert "no interval (one seed)" in one
