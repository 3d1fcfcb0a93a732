"""`mirai tokenize fit | encode | info | decode` through the command line on tiny data the test makes."""

import numpy as np
import pytest
from mirai_testdata import make_class_images
from typer.testing import CliRunner

from mirai_cli.cli.app import app

runner = CliRunner()

TINY_VQ = ["--set", "data.image_size=16", "--set", "tokenizer.ch=16", "--set", "tokenizer.ch_mult=[1, 2]",
           "--set", "tokenizer.z_channels=8", "--set", "tokenizer.codebook_size=64", "--set", "tokenizer.codebook_dim=4",
           "--set", "tokenizer.fit_steps=4", "--set", "tokenizer.fit_batch_size=8", "--set", "train.precision=fp32",
           "--set", "data.crop=flip", "--set", "tokenizer.shard_size=16", "--set", "model.num_classes=4",
           "--set", "data.val_images=0"]


@pytest.mark.slow
def test_fit_encode_info_decode(tmp_path):
    images, labels = make_class_images(40, size=16)
    npz = tmp_path / "images.npz"
    np.savez(npz, images=images, labels=labels)
    args = ["--preset", "tiny", "--set", f"data.source={npz}", "--set", f"tokenizer.checkpoint={tmp_path / 'tok'}",
            "--set", f"data.store={tmp_path / 'store'}", *TINY_VQ, "--set", "data.val_images=8"]
    result = runner.invoke(app, ["tokenize", "fit", *args, "--quiet"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tok" / "tokenizer.pt").is_file() and "codebook usage" in result.output
    result = runner.invoke(app, ["tokenize", "encode", *args, "--quiet"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "32 images x 2 crops" in out and "8 held-out validation images" in out  # 8 of 40 held out
    result = runner.invoke(app, ["tokenize", "info", str(tmp_path / "store")])
    assert result.exit_code == 0 and "complete" in result.output, result.output
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["tokenize", "decode", str(tmp_path / "store"), "--out", str(out), "--count", "4"])
    assert result.exit_code == 0 and out.stat().st_size > 0, result.output


def test_missing_builtin_or_source_is_one_line(tmp_path):
    result = runner.invoke(app, ["tokenize", "encode", "--preset", "tiny", "--set", f"data.source={tmp_path / 'none'}",
                                 "--set", f"data.store={tmp_path / 's'}", "--set", f"tokenizer.checkpoint={tmp_path}"])
    assert result.exit_code == 2 and "error:" in result.output and "Traceback" not in result.output
