"""No function in the tokenizer and the engine is longer than 60 lines, so each one reads in one sitting.

The rule: a function's length is the number of source lines from its `def` line (decorators not counted) to
its last line, both included: signature, docstring, comments and blank lines inside all count. Nested
functions and methods are measured on their own as well as inside the function that holds them."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mirai_cli"
FOLDERS = ("tokenizer", "engine")
LIMIT = 60


def function_lengths(folder: Path) -> list[tuple[str, int]]:
    """(`file:line name`, length) of every function and method under `folder`."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((f"{path.relative_to(folder)}:{node.lineno} {node.name}", node.end_lineno - node.lineno + 1))
    return found


def test_the_rule_counts_from_def_to_the_last_line(tmp_path):
    (tmp_path / "m.py").write_text('@decorator\ndef f(\n    a,\n):\n    """doc"""\n\n    return a\n\n\nx = 1\n')
    assert function_lengths(tmp_path) == [("m.py:2 f", 6)]


@pytest.mark.parametrize("folder", FOLDERS)
def test_no_function_over_the_limit(folder):
    lengths = function_lengths(PACKAGE / folder)
    assert lengths, f"no functions found under mirai_cli/{folder}"
    too_long = [f"{where} ({n} lines)" for where, n in lengths if n > LIMIT]
    assert not too_long, f"functions over {LIMIT} lines (split them into named helpers): " + "; ".join(too_long)
