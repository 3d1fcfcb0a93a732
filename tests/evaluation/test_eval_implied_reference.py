"""`mirai eval --fid SAMPLES/` with no --ref: a folder written by `mirai sample` names its run, whose preset
names the data and the resize; the banner says which reference was used, and --ref still overrides."""

from __future__ import annotations

import json
from pathlib import Path

from clirun import mirai
from evalhelpers import images, write_folder, write_npz
from typer.testing import CliRunner

from mirai_cli.cli.app import app
from mirai_cli.config import load_config, resolved_toml

runner = CliRunner()


def _run_with_samples(tmp_path: Path) -> tuple[Path, Path]:
    """A run folder (preset.toml naming an .npz data source, eval.resize 16) and a sample folder of it."""
    data = write_npz(tmp_path / "data.npz", images(12, seed=1, style="dark"), labels=[0] * 12)
    run = tmp_path / "run"
    (run / "checkpoints" / "step_00000010").mkdir(parents=True)
    config = load_config(["tiny"], [f"data.source={data}", "eval.resize=16"])
    (run / "preset.toml").write_text(resolved_toml(config))
    samples = write_folder(run / "samples" / "step_00000010-ema-cfg2-seed0" / "images", images(12, seed=0))
    (samples.parent / "sample_manifest.json").write_text(json.dumps(
        {"format": "mirai-samples-1", "checkpoint": str(run / "checkpoints" / "step_00000010"), "identity": {}}))
    return run, samples.parent


def test_the_reference_comes_from_the_run(tmp_path, tiny_weights):
    run, samples = _run_with_samples(tmp_path)
    res = runner.invoke(app, ["eval", "--fid", str(samples), "-e", "tiny-test", "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    banner = " ".join(res.stderr.split())
    assert f"reference from the run's preset {run / 'preset.toml'}" in banner and "resize 16" in banner
    result = json.loads((samples.parent / f"{samples.name}.metrics.json").read_text())
    assert result["reference"]["count"] == 12 and str(tmp_path / "data.npz") in json.dumps(result["reference"])

    other = write_npz(tmp_path / "other.npz", images(9, seed=5))
    res = runner.invoke(app, ["eval", "--fid", str(samples), "--ref", str(other), "-e", "tiny-test", "--cache-dir",
                              str(tmp_path / "c"), "-o", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    assert "reference from --ref" in " ".join(res.stderr.split())
    assert json.loads((tmp_path / "m.json").read_text())["reference"]["count"] == 9


def test_plain_folder_without_a_run_still_asks_for_ref(tmp_path):
    folder = write_folder(tmp_path / "pngs", images(4))
    res = runner.invoke(app, ["eval", "--fid", str(folder)])
    assert res.exit_code == 2 and "no reference: pass --ref" in res.stderr


def test_headline_example_as_a_subprocess(tmp_path):
    """The README's `mirai eval --fid samples/` from the command line: the implied reference is used (then the
    offline run stops, with one line, at the missing Inception weights)."""
    run, samples = _run_with_samples(tmp_path)
    result = mirai("eval", "--fid", samples, "--offline", cwd=tmp_path)
    assert "Traceback" not in result.stderr and "no reference" not in result.stderr
    assert f"reference from the run's preset {run / 'preset.toml'}" in " ".join(result.stderr.split())


def test_a_run_preset_that_does_not_load_falls_back_to_the_command_line(tmp_path, tiny_weights):
    """A run from another version (its preset.toml has a setting this version lacks): with --ref the command
    line is enough (a warning names the file and why); without, one line asks for --ref."""
    run, samples = _run_with_samples(tmp_path)
    preset = run / "preset.toml"
    preset.write_text(preset.read_text() + "\n[future]\nsetting = 1\n")
    ref = write_npz(tmp_path / "ref.npz", images(12, seed=1, style="dark"))
    res = runner.invoke(app, ["eval", "--fid", str(samples), "--ref", str(ref), "-e", "tiny-test",
                              "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    warning = " ".join(res.stderr.split())
    assert f"the run's preset {preset} did not load" in warning and "future" in warning
    res = runner.invoke(app, ["eval", "--fid", str(samples), "-e", "tiny-test", "--cache-dir", str(tmp_path / "c")])
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.exit_code == 2 and len(errors) == 1, res.output
    assert "--ref" in errors[0] and str(preset) in " ".join(res.stderr.split()), res.output
