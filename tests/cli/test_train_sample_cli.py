"""`mirai train` then `mirai sample` through the command line on the tiny store."""

import numpy as np
import pytest
from mirai_testdata import tiny_overrides
from typer.testing import CliRunner

from mirai_cli.cli.app import app

runner = CliRunner()


def sets(items):
    out = []
    for item in items:
        out += ["--set", item]
    return out


@pytest.mark.slow
def test_train_then_sample_from_the_run(tiny_store, tmp_path):
    run = tmp_path / "run"
    args = ["--preset", "mirai-e", "--preset", "tiny", *sets(tiny_overrides(tiny_store, run, **{"train.duration": 2}))]
    result = runner.invoke(app, ["train", *args, "--quiet"])
    assert result.exit_code == 0, result.output
    assert "Mirai-E" in result.output and "done" in result.output
    out = tmp_path / "samples"
    result = runner.invoke(app, ["sample", str(run), *args, "--per-class", "2", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert len(list(out.rglob("*_c*.png"))) == 8
    arr = np.load(next(out.glob("*.npz")))["arr_0"]
    assert arr.shape == (8, 16, 16, 3) and arr.dtype == np.uint8
    # the same run again: nothing redone, nothing overwritten
    result = runner.invoke(app, ["sample", str(run), *args, "--per-class", "2", "--out", str(out), "--quiet"])
    assert result.exit_code == 0 and "0 new" in result.output, result.output


def test_train_refuses_a_missing_store_with_one_line(tmp_path):
    result = runner.invoke(app, ["train", "--preset", "tiny", "--set", f"data.store={tmp_path / 'nope'}",
                                 "--set", f"train.run_dir={tmp_path / 'r'}"])
    assert result.exit_code == 2
    assert "error:" in result.output and "Traceback" not in result.output
