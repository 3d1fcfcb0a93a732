"""bench/study_paired.py on a synthetic rows file: paired gains and per-pair speed-ups by student width (the
parameter counts from the study files' presets), the Welch rule between widths, the plot, and rows without curves."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    studies = ["--studies", str(REPO / "docs" / "studies")]  # the rows' names and baselines
    return subprocess.run([sys.executable, str(REPO / "bench" / "study_paired.py"), *studies, *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def write_rows(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def row(name: str, seed: int, curve: dict, fit: str = "fitA", **extra) -> dict:
    return {"name": name, "seed": seed, "tokenizer": fit, "curve": {str(k): v for k, v in curve.items()}, **extra}


def test_student_size_table_and_plot_from_the_widths_that_finished(tmp_path):
    rows = []
    for seed, d in zip((100, 101, 102), (0.0, 0.02, -0.01)):
        # width 128: Mirai reaches the pair's baseline final (2.2 + d) at step 2000 of 3000: 1.5x, gain 0.03
        rows += [row("base-3k", seed, {1000: 2.6 + d, 2000: 2.3 + d, 3000: 2.2 + d}),
                 row("enc-s8-l05-3k", seed, {1000: 2.5 + d, 2000: 2.2 + d, 3000: 2.17 + d})]
    for seed, g in zip((100, 101, 102), (0.04, 0.05, 0.06)):  # width 256: gains 0.04-0.06
        rows += [row("base-w256-3k", seed, {1000: 2.5, 2000: 2.2, 3000: 2.1}),
                 row("enc-s8-l05-w256-3k", seed, {1000: 2.45, 2000: 2.1, 3000: 2.1 - g})]
    rows.append(row("base-w384-3k", 100, {1000: 2.4, 2000: 2.1, 3000: 2.0}))  # no Mirai row yet: left out
    write_rows(tmp_path / "rows.jsonl", rows)
    result = run("student-size", "--rows", tmp_path / "rows.jsonl", "--plot", tmp_path / "size.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "| 128 | 4 | 0.85M | fitA | 100, 101, 102 | +0.03 [+0.03, +0.03] | 1.5x [1.5, 1.5] |" in out
    assert "| 256 | 4 | 3.21M | fitA | 100, 101, 102 | +0.05 [+0.0252, +0.0748] |" in out
    assert "| 384 |" not in out
    # width 256 - width 128: 0.02, Welch df 2 (width 128's gains have sd 0): 4.303 * 0.01 / sqrt(3)
    assert "paired gain, width 256 - width 128: +0.0200 [-0.0048, +0.0448] (Welch 95%)" in out
    assert (tmp_path / "size.png").stat().st_size > 5000
    horizon = run("horizon", "base-3k", "enc-s8-l05-3k", "--rows", tmp_path / "rows.jsonl", cwd=tmp_path).stdout
    assert "| 3000 | 2.2033 | +0.03 [+0.03, +0.03] | 1.5x [1.5, 1.5] |" in horizon, horizon


def test_rows_without_curves_give_the_paired_gain_and_ask_for_a_rerun(tmp_path):
    rows = [row("b", s, {3000: 2.20 + 0.01 * s}, baseline="b") for s in (0, 1, 2)]
    rows += [row("v", s, {3000: 2.19 + 0.01 * s - 0.001 * s}, baseline="b") for s in (0, 1, 2)]
    rows += [row("v", 3, {3000: 2.0}, fit="fitB", baseline="b")]  # another fit, no baseline on it: not compared
    write_rows(tmp_path / "rows.jsonl", rows)
    result = run("pairs", "--rows", tmp_path / "rows.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [x for x in result.stdout.splitlines() if x.startswith("| b | v |")]
    assert len(lines) == 1
    assert "| fitA | 0, 1, 2 | 3000 | +0.01 / +0.011 / +0.012 | +0.011 [+0.00852, +0.0135] | needs a rerun" in lines[0]
    assert run("gains", "0.026", "0.017", "0.021", cwd=tmp_path).stdout.strip() == "+0.0213 [+0.0101, +0.0325]"
    missing = run("pair", "b", "nothing", "--rows", tmp_path / "rows.jsonl", cwd=tmp_path)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
