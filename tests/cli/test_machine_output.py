"""Machine-readable output is never wrapped or styled when stdout is a file or a pipe: a resolved preset
written with `>` or `|` validates as it is, for every shipped preset."""

import os
import subprocess
import sys

import pytest
from clirun import REPO, assert_ok, mirai

from mirai_cli.config import load_config, shipped_preset_names


@pytest.mark.parametrize("name", shipped_preset_names())
def test_resolved_preset_through_a_pipe_validates(name, tmp_path):
    shown = mirai("presets", "show", name, "--resolved")
    assert_ok(shown)
    assert "\x1b[" not in shown.stdout  # no colour codes in a pipe
    checked = mirai("presets", "validate", "-", input=shown.stdout)
    assert_ok(checked)
    assert checked.stdout.startswith("ok -")
    # the same file through `>`: it loads to the very config that was shown
    path = tmp_path / "my.toml"
    path.write_text(shown.stdout)
    assert load_config([str(path)]).model_dump() == load_config([name]).model_dump()


def test_shell_pipe_as_in_the_readme(tmp_path):
    line = f"{sys.executable} -m mirai_cli presets show mirai-e --resolved | {sys.executable} -m mirai_cli presets validate -"
    result = subprocess.run(line, shell=True, capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0 and result.stdout.startswith("ok -"), result.stdout + result.stderr


def test_a_bad_preset_on_stdin_is_one_line(tmp_path):
    from clirun import assert_one_line_error

    assert_one_line_error(mirai("presets", "validate", "-", input='[model]\nlayers = "many"\n'), "<stdin>", "model.layers",
                          code=2)
