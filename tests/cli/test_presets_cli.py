"""`mirai presets ...` and the one-line errors (exit code 2, no traceback) for bad presets."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirai_cli.cli.app import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_list_shows_every_shipped_preset_with_description():
    result = run("presets", "list")
    assert result.exit_code == 0, result.output
    for name in ["llamagen-b", "llamagen-l", "llamagen-xl", "mirai-e", "mirai-i", "tiny"]:
        assert name in result.output
    assert "EMA teacher" in result.output


def test_show_resolved_prints_every_section():
    result = run("presets", "show", "mirai-e", "tiny", "--resolved")
    assert result.exit_code == 0, result.output
    for section in ["[data]", "[tokenizer]", "[model]", "[foresight]", "[train]", "[sample]", "[eval]", "[ablate]"]:
        assert section in result.output
    assert 'source = "ema"' in result.output


def test_validate_accepts_a_good_file(tmp_path: Path):
    good = tmp_path / "good.toml"
    good.write_text('extends = "tiny"\n[foresight]\nsource = "ema"\n')
    result = run("presets", "validate", str(good))
    assert result.exit_code == 0, result.output
    assert "ok" in result.output


BAD_PRESETS = [
    # (file text, expected message fragments)
    ('extends = "tiny"\n[model]\nlayerz = 3\n', ["model.layerz", "did you mean 'layers'"]),
    ('extends = "tiny"\n[foresigt]\nk = 3\n', ["foresigt", "did you mean 'foresight'"]),
    ('extends = "tiny"\n[train]\nlr = -1.0\n', ["train.lr = -1.0", "greater than 0"]),
    ('extends = "tiny"\n[model]\nresid_dropout = 1.0\n', ["model.resid_dropout = 1.0", "less than 1"]),
    ('extends = "tiny"\n[foresight]\ndepth = 9\n', ["foresight.depth = 9 exceeds model.layers = 4"]),
    ('extends = "tiny"\n[foresight]\nk = 0\n', ["foresight.k = 0", "greater than or equal to 1"]),
    ('extends = "tiny"\n[foresight]\nsource = "teacher"\n', ["foresight.source = 'teacher'", "choose one of none, ema, encoder"]),
    ('extends = "tiny"\n[data]\nimage_size = 30\n', ["data.image_size = 30 is not divisible"]),
    ('extends = "tiny"\n[foresight]\nencoder = "clip"\n', ["foresight.encoder = 'clip'", "unknown encoder"]),
    ('extends = "tiny"\n[model]\nheads = 3\n', ["dim = 128 is not divisible by heads = 3"]),
    ('extends = "mirai-e"\n[model]\nlayers = 10\n', ["layers = 10 conflicts with size = 'GPT-B'"]),
    ('extends = "tiny"\n[train]\nduration = "ten"\n', ["train.duration = 'ten'", "'15ep'"]),
    ('extends = "tiny"\n[foresight]\nlambda = [1.0, 2.0]\n', ["lambda has 2 values for k = 3 heads"]),
    ('extends = "tiny"\n[sample]\nclasses = [3, 12]\n', ["sample.classes [12] outside the model's 10 classes"]),
    ('extends = "tiny"\n[foresight]\noffsets = [[0, 1, 2]]\n', ["offsets: layout 2d takes [row, col] pairs"]),
    ('extends = "no-such-preset"\n', ["no preset named 'no-such-preset'", "choose one of"]),
    ('[train\nlr = 1\n', ["not valid TOML"]),
    ('extends = "tiny"\n[eval]\nextractor = "clip"\n', ["eval.extractor = 'clip'", "unknown extractor"]),
]


@pytest.mark.parametrize("text, fragments", BAD_PRESETS)
def test_bad_preset_gives_one_line_and_exit_2(tmp_path: Path, text, fragments):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = run("presets", "validate", str(path))
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())  # rich may wrap long lines
    assert "Traceback" not in result.output
    assert "error:" in message
    for fragment in fragments:
        assert fragment in message, message
    if "no preset named" not in fragments[0] and "not valid TOML" not in fragments[0]:
        assert "bad.toml" in message  # the file is named


def test_missing_preset_name_lists_available():
    result = run("presets", "show", "mirai-ee")
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "did you mean 'mirai-e'" in message and "llamagen-b" in message


def test_bad_set_override_names_the_command_line():
    result = run("presets", "show", "tiny", "--set", "train.lr=0")
    assert result.exit_code == 2
    assert "--set: train.lr = 0" in " ".join(result.output.split())
    result = run("presets", "show", "tiny", "--set", "trainlr")
    assert result.exit_code == 2 and "section.key=value" in result.output
