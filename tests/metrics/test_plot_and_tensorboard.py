"""`mirai plot RUN [RUN...]` from metrics.jsonl, and the optional TensorBoard sink."""

import importlib.util
import json
import re

import pytest
from clirun import REPO, assert_ok, assert_one_line_error, mirai
from PIL import Image

from mirai_cli.config.loader import tomllib
from mirai_cli.errors import MiraiError
from mirai_cli.metrics.plot import loss_terms, read_run
from mirai_cli.metrics.tensorboard_sink import open_sink


def _run(folder, scale):
    folder.mkdir()
    lines = [{"step": s, "loss": scale / s, "ntp": scale / s, "foresight_h0": 0.5 / s, "lr": 1e-3,
              "grad_norm": 1.0 + s, "tokens_per_s": 100.0} for s in range(1, 21)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"step": 21, "los')
    return folder


def test_plot_two_runs_as_a_subprocess(tmp_path):
    a, b = _run(tmp_path / "a", 1.0), _run(tmp_path / "b", 2.0)
    assert loss_terms({"a": read_run(a)}) == ["loss", "ntp", "foresight_h0"]  # torn last line skipped
    out = tmp_path / "curves.png"
    assert_ok(mirai("plot", a, b, "--out", out))
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 800
    assert_one_line_error(mirai("plot", tmp_path / "nope"), "no metrics.jsonl", code=2)


def test_tensorboard_sink_off_is_none_and_on_writes_or_says_how_to_install(tmp_path):
    assert open_sink(tmp_path, False) is None
    if importlib.util.find_spec("tensorboard") is None:
        distribution = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"]  # what pip knows
        with pytest.raises(MiraiError, match=re.escape(f"pip install '{distribution}[tensorboard]'")):
            open_sink(tmp_path, True)
        return
    sink = open_sink(tmp_path, True)
    sink.write({"step": 3, "loss": 1.5, "lr": 1e-3, "note": "text", "nan": float("nan")})
    sink.close()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
