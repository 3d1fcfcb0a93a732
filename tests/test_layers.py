"""The package layers, as ARCHITECTURE.md draws them: each package imports only from the tiers below its own
(imports inside functions count too: a lazy upward import is still a cycle). Read from the source with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import mirai_cli

# Top to bottom. A package may import from any tier below its own, never from its own tier's siblings or above.
# metrics/ (the JSONL log, TensorBoard, plot) sits between config and the process/disk tier: it writes files.
# foresight sits above tokenizer: the Mirai-I "tokenizer" teacher is the tokenizer's encoder.
TIERS: list[set[str]] = [
    {"__main__"},
    {"cli"},
    {"ablate"},
    {"sampling", "engine", "evaluation"},
    {"foresight"},
    {"tokenizer"},
    {"gpt", "data"},
    {"config"},
    {"metrics"},
    {"runtime", "files"},
    {"errors", "__init__"},
]
TIER = {name: i for i, names in enumerate(TIERS) for name in names}


def _package_of(module: str) -> str:
    """'mirai_cli.engine.run' -> 'engine'; the root package's own names (mirai_cli.__version__) -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and not parts[1].startswith("__") else "__init__"


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mirai_cli":
            if node.module == "mirai_cli":  # `from mirai_cli import x`: x is a subpackage or a root name
                out += [(node.lineno, f"mirai_cli.{alias.name}") for alias in node.names]
            else:
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "mirai_cli"]
    return out


def upward_imports(root: Path) -> list[str]:
    """Every import in the package under `root` that goes to its own tier's sibling or above, or to a package
    the tiers do not name (a new package must be placed in TIERS)."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        source = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for line, module in _imported(ast.parse(path.read_text())):
            target = _package_of(module)
            if source not in TIER or target not in TIER:
                problems.append(f"{rel}:{line} {module}: package not placed in TIERS")
            elif target != source and TIER[target] <= TIER[source]:
                problems.append(f"{rel}:{line} imports {module} ({'/'.join(sorted(TIERS[TIER[source]]))} may "
                                f"not import {'/'.join(sorted(TIERS[TIER[target]]))})")
    return problems


def test_no_package_imports_upward_or_sideways():
    problems = upward_imports(Path(mirai_cli.__file__).parent)
    assert not problems, "\n".join(problems)


def test_the_checker_sees_an_upward_import(tmp_path):
    root = tmp_path / "mirai_cli"
    (root / "gpt").mkdir(parents=True)
    (root / "gpt" / "model.py").write_text("def f():\n    from mirai_cli.engine.run import build_run\n")
    (root / "data").mkdir()
    (root / "data" / "x.py").write_text("from mirai_cli.gpt import GPT\n")  # sideways: same tier
    (root / "config").mkdir()
    (root / "config" / "y.py").write_text("from mirai_cli.errors import MiraiError\n")  # downward: fine
    problems = upward_imports(root)
    assert [p.split(" ")[0] for p in problems] == ["data/x.py:1", "gpt/model.py:2"]
