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


def _write_log(folder, records):
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_one_colour_and_one_label_per_run_across_every_panel(tmp_path, monkeypatch):
    """Read back from the figure as saved: each run's lines share one colour in every panel, including panels
    only some runs log (foresight_h0), and one legend says that colour for every run. Runs whose folders share a
    name get distinct labels."""
    import matplotlib.figure
    import matplotlib.lines

    from mirai_cli.metrics.plot import plot_runs

    saved = []
    real_savefig = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, *a, **k: (saved.append(fig), real_savefig(fig, *a, **k))[1])
    base = [{"step": s, "loss": 2.0 / s, "ntp": 2.0 / s, "lr": 1e-3, "grad_norm": 1.0} for s in range(1, 6)]
    mirai = [{**r, "foresight": 0.3 / r["step"], "foresight_h0": 0.2 / r["step"]} for r in base]
    runs = [_write_log(tmp_path / "baseline" / "run", base), _write_log(tmp_path / "mirai-e" / "run", mirai)]
    plot_runs(runs, tmp_path / "curves.png")
    (fig,) = saved
    colours = {}  # label -> the colours its lines have, over every panel
    for ax in fig.axes:
        for line in ax.get_lines():
            colours.setdefault(line.get_label(), set()).add(matplotlib.colors.to_hex(line.get_color()))
    assert sorted(colours) == ["baseline/run", "mirai-e/run"], colours
    assert all(len(c) == 1 for c in colours.values()), colours
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    assert len(legends) == 1
    said = {text.get_text(): matplotlib.colors.to_hex(handle.get_color())
            for text, handle in zip(legends[0].get_texts(), legends[0].legend_handles)
            if isinstance(handle, matplotlib.lines.Line2D)}
    assert said == {label: next(iter(c)) for label, c in colours.items()}


def test_the_figure_format_follows_the_out_suffix(tmp_path):
    run = _run(tmp_path / "a", 1.0)
    for suffix, magic in ((".pdf", b"%PDF"), (".svg", b"<?xml"), (".PNG", b"\x89PNG")):
        assert_ok(mirai("plot", run, "--out", tmp_path / f"c{suffix}"))
        assert (tmp_path / f"c{suffix}").read_bytes().startswith(magic), suffix
    assert_one_line_error(mirai("plot", run, "--out", tmp_path / "c.jpgx"), "c.jpgx", ".png, .pdf or .svg", code=2)
    assert not list(tmp_path.glob("*c.jpgx*"))
