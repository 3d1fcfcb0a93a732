"""One name per thing: a public module-level name (function, class, constant) is defined in one module of the
package. Two definitions of one name either drift apart (IMAGE_EXTENSIONS had 10 entries in one place and 5 in
the other) or mean two different things (FeatureCache, ENCODERS) and make every import a guess."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import mirai_cli

# Names that each module owns for itself, by design; every entry says why it is not a twin.
PER_MODULE = {
    "app": "each command module's own Typer app",
    "console": "the CLI's stdout console and the progress bars' stderr console",
    "Log": "a local type alias of a message callback",
    "FORMAT": "each file format's own tag",
    "FORMAT_VERSION": "each file format's own version",
    "KIND": "each folder kind's own manifest tag",
    "MANIFEST": "each folder kind's own manifest file name",
    "check_fits": "the GPT's and the tokenizer's checkpoint checks (same role, one per model)",
    "infer_config": "the GPT's and the tokenizer's config from shapes (same role, one per model)",
}


def _top_level_names(tree: ast.Module) -> list[str]:
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return names


def defined_twice(root: Path) -> dict[str, list[str]]:
    where: dict[str, list[str]] = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        for name in _top_level_names(ast.parse(path.read_text())):
            if not name.startswith("_") and name not in PER_MODULE and not name.startswith("__"):
                where[name].append(str(path.relative_to(root)))
    return {name: files for name, files in where.items() if len(files) > 1}


def test_every_public_name_is_defined_in_one_module():
    twins = defined_twice(Path(mirai_cli.__file__).parent)
    assert not twins, "\n".join(f"{name}: {', '.join(files)}" for name, files in sorted(twins.items()))


def test_the_check_sees_a_twin(tmp_path):
    (tmp_path / "a.py").write_text("IMAGE_EXTENSIONS = ('.png',)\n")
    (tmp_path / "b.py").write_text("IMAGE_EXTENSIONS = ('.png', '.jpg')\ndef _private():\n    pass\n")
    (tmp_path / "c.py").write_text("def _private():\n    pass\n")
    assert defined_twice(tmp_path) == {"IMAGE_EXTENSIONS": ["a.py", "b.py"]}
