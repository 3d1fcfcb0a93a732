"""`mirai eval` through the real Typer app: table + JSON, exit codes (0 all computed, 1 a metric failed,
2 bad input as one red line), `mirai eval stats`, offline Inception message."""

from __future__ import annotations

import json

import tiny_extractor
import torch
from evalhelpers import images, write_folder, write_npz
from typer.testing import CliRunner

from mirai_cli.cli.app import app
from mirai_cli.evaluation.weights import INCEPTION_URL

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["eval", *args])


def test_eval_writes_table_and_json(tmp_path, tiny_weights):
    a = write_folder(tmp_path / "samples", images(12, seed=0))
    b = write_npz(tmp_path / "ref.npz", images(12, seed=1, style="dark"))
    res = run("--fid", str(a), "--ref", str(b), "--isc", "--kid", "--prc", "--isc-splits", "3",
              "--kid-subset-size", "6", "-e", "tiny-test", "--cache-dir", str(tmp_path / "c"))
    assert res.exit_code == 0, res.output
    assert "FD-tiny" in res.stdout and "Precision-tiny" in res.stdout
    assert "not comparable" in res.stderr
    out = json.loads((tmp_path / "samples.metrics.json").read_text())  # default: beside the samples
    assert out["ok"] and set(out["asked"]) == {"fid", "isc", "kid", "prc"}
    assert out["samples"]["count"] == 12 and out["reference"]["count"] == 12 and out["extractor"]["name"] == "tiny-test"


def test_bad_input_is_one_red_line_exit_2(tmp_path, tiny_weights):
    (tmp_path / "empty").mkdir()
    b = write_npz(tmp_path / "ref.npz", images(8))
    res = run("--fid", str(tmp_path / "empty"), "--ref", str(b), "-e", "tiny-test")
    assert res.exit_code == 2
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no images in" in errors[0] and "Traceback" not in res.output


def test_offline_inception_message(tmp_path):
    s = write_npz(tmp_path / "s.npz", images(4))
    res = run("--fid", str(s), "--ref", str(s))
    assert res.exit_code == 2
    assert INCEPTION_URL in " ".join(res.stderr.split()) and "Traceback" not in res.output


def test_stats_then_eval_against_the_file(tmp_path, tiny_weights):
    s = write_npz(tmp_path / "s.npz", images(10, seed=2))
    ref = write_npz(tmp_path / "r.npz", images(10, seed=3, style="dark"))
    res = runner.invoke(app, ["eval", "stats", str(ref), "--out", str(tmp_path / "st.npz"), "--features",
                              "-e", "tiny-test", "--no-cache"])
    assert res.exit_code == 0, res.output
    res = run("--kid", str(s), "--ref", str(tmp_path / "st.npz"), "--kid-subset-size", "5", "-e", "tiny-test",
              "--no-cache", "-o", str(tmp_path / "m.json"))
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "m.json").read_text())
    assert out["reference"]["kind"] == "stats" and out["values"]["kid_mean"] > 0


def test_non_finite_metric_exits_1(tmp_path, tiny_weights, monkeypatch):
    bad = tmp_path / "nan.pt"
    sd = torch.load(tiny_weights, weights_only=True)
    sd["c2.weight"] = torch.full_like(sd["c2.weight"], float("nan"))
    torch.save(sd, bad)
    monkeypatch.setitem(tiny_extractor.WEIGHTS, "path", bad)
    s = write_npz(tmp_path / "s.npz", images(8))
    res = run("--fid", str(s), "--ref", str(s), "-e", "tiny-test", "--no-cache", "-o", str(tmp_path / "m.json"))
    assert res.exit_code == 1, res.output
    out = json.loads((tmp_path / "m.json").read_text())
    assert out["ok"] is False and "fid" in out["failed"]


def test_a_damaged_cache_entry_is_computed_again_with_a_warning(tmp_path, tiny_weights):
    """A zero-byte or truncated entry of the reference feature cache (a full disk, a killed copy) is a cache miss."""
    a = write_folder(tmp_path / "samples", images(10, seed=0))
    b = write_npz(tmp_path / "ref.npz", images(10, seed=1, style="dark"))
    args = ("--fid", str(a), "--ref", str(b), "-e", "tiny-test", "--cache-dir", str(tmp_path / "c"))
    res = run(*args, "-o", str(tmp_path / "first.json"))
    assert res.exit_code == 0, res.output
    entries = sorted((tmp_path / "c" / "features").rglob("*.np[yz]"))
    assert entries
    for i, entry in enumerate(entries):  # zero bytes, or cut short
        entry.write_bytes(b"" if i % 2 == 0 else entry.read_bytes()[:100])
    res = run(*args, "-o", str(tmp_path / "again.json"))
    assert res.exit_code == 0, res.output
    assert "computing it again" in res.stderr
    first, again = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("first", "again"))
    assert again["values"] == first["values"]


def test_stats_out_is_checked_first_named_in_errors_and_leaves_no_temporary_file(tmp_path, tiny_weights):
    """A bad --out is one line naming --out's path (never the temporary file), found before any computing where
    the name alone says it, and nothing is left behind."""
    import numpy as np
    import pytest

    from mirai_cli.files.atomic import save_npz

    ref = write_npz(tmp_path / "r.npz", images(10, seed=3))
    (tmp_path / "plain").write_text("a file")
    for out, fragment in ((tmp_path / "st", "must end in .npz"),
                          (tmp_path / "plain" / "st.npz", "is a file, not a folder"),
                          (tmp_path / f"{'s' * 300}.npz", "too long")):
        res = runner.invoke(app, ["eval", "stats", str(ref), "--out", str(out), "-e", "tiny-test", "--no-cache"])
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert res.exit_code in (1, 2) and isinstance(res.exception, SystemExit), res.output
        assert len(errors) == 1 and str(out) in errors[0] and fragment in errors[0], res.output
        assert "statistics of" not in res.stdout and "computing" not in res.output.lower(), res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain", "r.npz"]  # no temporary file, no output
    # The atomic writer, under every output file: its errors name the destination and leave nothing behind.
    for out in (tmp_path / "plain" / "x.npz", tmp_path / f"{'x' * 260}.npz"):
        with pytest.raises(OSError) as caught:
            save_npz(out, a=np.zeros(3))
        assert caught.value.filename == str(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain", "r.npz"]
