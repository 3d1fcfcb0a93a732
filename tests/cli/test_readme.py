"""The README's and docs' command lines cannot drift: every one parses against the real CLI (commands, options,
presets), every setting a doc names exists in the schema, and the tiny-preset walkthrough runs for real, as a user
would type it (plus overrides that shrink it to seconds, on a small Fashion-MNIST made by the test)."""

from __future__ import annotations

import gzip
import json
import re
import shlex
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from clirun import REPO, assert_ok, mirai
from mirai_testdata import make_class_images

from mirai_cli.ablate.study_file import chosen_variants, read_study_file, split_names
from mirai_cli.cli.app import app
from mirai_cli.config import load_config
from mirai_cli.config.schema import SECTIONS

DOCS = sorted((REPO / "docs").glob("*.md"))
# The walkthrough: the README's tiny commands, then the usage reference's, in order (one folder of runs).
WALKTHROUGH = [REPO / "README.md", REPO / "docs" / "usage.md"]


def bash_commands(path: Path) -> list[str]:
    """Every `mirai ...` line of a Markdown file's bash blocks (continuation lines joined, comments dropped)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if "mirai" in line and not line.startswith("#"):
                commands += [part.strip() for part in line.split(" | ")]  # each side of a pipe parses alone
    return commands


def readme_commands() -> list[str]:
    return [line for path in WALKTHROUGH for line in bash_commands(path)]


def _mirai_args(line: str) -> list[str] | None:
    """The arguments after `mirai` (or `-m mirai_cli`); None for lines that only install."""
    words = shlex.split(line.replace("...", "X"))
    for marker in ("mirai", "mirai_cli"):
        if marker in words:
            return words[words.index(marker) + 1:]
    return None


def _resolve(args: list[str]):
    """Parse `mirai ARGS` as the CLI does; unknown options, bad values and unknown commands raise."""
    command = typer.main.get_command(app)  # typer's own (vendored) click: groups are told by resolve_command
    ctx = command.make_context("mirai", list(args), resilient_parsing=False)
    while hasattr(command, "resolve_command"):
        rest = [*(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])), *ctx.args]
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx)
    return ctx


def _check_study(ctx) -> None:
    """`ablate --study FILE --variants A,B`: the study file exists and names those variants."""
    study = ctx.params.get("study_path")
    if study is not None and not re.search(r"FILE|\*", str(study)):  # FILE, *, NAME: placeholders
        names = [n for n in split_names(ctx.params.get("variant_names")) if n != "NAME"]
        chosen_variants(read_study_file(REPO / study), names or None)


@pytest.mark.parametrize("line", [pytest.param(line, id=f"{path.name}: {line}")
                                  for path in [REPO / "README.md", *DOCS] for line in bash_commands(path)])
def test_every_documented_command_parses(line):
    args = _mirai_args(line)
    if args is None:
        return
    ctx = _resolve(args)
    assert not ctx.args, f"unexpected arguments {ctx.args}"
    presets = ctx.params.get("presets") or []
    if presets:
        load_config(list(presets), list(ctx.params.get("overrides") or []))
    _check_study(ctx)


def _prose(text: str) -> str:
    """The text without its fenced blocks (their ``` would pair with inline backticks)."""
    return re.sub(r"```.*?```", "", text, flags=re.S)


def inline_commands(text: str) -> list[str]:
    """`mirai ...` (or `... -m mirai_cli ...`) commands quoted inline in prose or tables, line breaks joined."""
    spans = [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", _prose(text))]
    return [s for s in spans if re.match(r"mirai [a-z]", s) or " -m mirai_cli " in s]


def unknown_flags(line: str) -> list[str]:
    """The `--options` of a quoted command fragment that its (sub)command does not have."""
    words = [w for w in _mirai_args(line.split(" | ")[0]) or [] if w]
    command, names = typer.main.get_command(app), []
    while hasattr(command, "commands"):  # a group: follow the subcommand names (the words before any option)
        sub = next((w for w in words if not w.startswith("-")), None)
        if sub in command.commands:
            words = words[words.index(sub) + 1:]
        elif "run" in command.commands:  # `mirai eval ARGS` means `mirai eval run ARGS`
            sub = "run"
        else:
            break
        names.append(sub)
        command = command.commands[sub]
    known = {opt for param in command.params for opt in [*param.opts, *param.secondary_opts]}
    return [f"mirai {' '.join(names)} {w}" for w in words if w.startswith("--") and w.split("=")[0] not in known]


SETTING = re.compile(rf"(?<![\w./$-])({'|'.join(SECTIONS)})\.([a-z_][a-z0-9_]*)(?![\w(/-]|\.\w)")  # not module paths


def unknown_settings(text: str) -> list[str]:
    """Setting names a doc uses that the schema does not have: `section.key` in inline code, in commands'
    `--set`, and on `section.key = value` lines (TOML blocks)."""
    candidates = [m for span in re.findall(r"`([^`]+)`", _prose(text)) for m in SETTING.findall(span)]
    candidates += [m for line in text.splitlines() for m in SETTING.findall(line.split("=")[0])
                   if re.match(r"\s*[a-z]+\.[a-z_0-9]+\s*=", line)]
    return sorted({f"{s}.{k}" for s, k in candidates if k not in SECTIONS[s].model_fields})


@pytest.mark.parametrize("path", [REPO / "README.md", REPO / "CHANGELOG.md", *DOCS], ids=lambda p: p.name)
def test_docs_name_real_options_and_settings(path):
    text = path.read_text()
    assert not unknown_settings(text), f"{path.name}: settings the schema does not have: {unknown_settings(text)}"
    bad = [flag for line in inline_commands(text) for flag in unknown_flags(line)]
    assert not bad, f"{path.name}: options the command does not have: {bad}"
    for line in inline_commands(text):
        if re.search(r"--study \S+\.toml", line) and "[" not in line:  # a study row's command (not a synopsis):
            # the file exists and holds the variants it names
            _check_study(_resolve(_mirai_args(line)))


def test_the_doc_checks_catch_a_planted_key_and_flag():
    assert unknown_settings("set `model.class_rope = true` or\nforesight.k = 3\ntrain.bogus = 1\n") == \
        ["model.class_rope", "train.bogus"]
    assert unknown_settings("`mirai train --set foresight.nope=1` and `mirai_cli.ablate.report` and `train.lr`") == \
        ["foresight.nope"]
    assert unknown_flags("mirai ablate --study x.toml --varients a") == ["mirai ablate --varients"]
    assert unknown_flags("mirai eval stats fashion-mnist --out x.npz") == []
    assert unknown_flags("mirai eval --fid x --device cuda") == [] and unknown_flags("mirai eval --fidd x")


SHRINK = ["data.max_images=48", "data.val_images=8", "data.image_size=16", "tokenizer.ch_mult=[1, 2]", "tokenizer.codebook_size=64",
          "tokenizer.fit_steps=4", "tokenizer.fit_batch_size=8", "tokenizer.shard_size=32", "model.layers=2",
          "model.dim=64", "model.heads=2", "foresight.depth=1", "foresight.projector_dim=64", "foresight.warmup=0",
          "foresight.lambda_at=2", "train.duration=4", "train.global_batch_size=8", "train.ckpt_every=2",
          "train.lr_warmup=0", "train.precision=fp32", "train.eval_every=0", "eval.resize=16"]


def _fashion_mnist(root: Path) -> Path:
    """$MIRAI_DATA/fashion-mnist with 48 train and 16 test images in the idx format."""
    folder = root / "fashion-mnist"
    folder.mkdir(parents=True)
    for split, n in (("train", 48), ("t10k", 16)):
        images, labels = make_class_images(n, size=28, num_classes=10)
        gray = images.mean(axis=3).astype(np.uint8)
        with gzip.open(folder / f"{split}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">HBBIII", 0, 8, 3, n, 28, 28) + gray.tobytes())
        with gzip.open(folder / f"{split}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">HBBI", 0, 8, 1, n) + labels.astype(np.uint8).tobytes())
    return root


@pytest.mark.slow
def test_tiny_walkthrough_runs_as_written(tmp_path):
    env = {"MIRAI_DATA": str(_fashion_mnist(tmp_path / "data"))}
    ran, seen = [], set()
    for line in readme_commands():
        args = _mirai_args(line)
        if args is None or line.startswith("torchrun") or "--jobs" in args or tuple(args) in seen:
            continue  # installs, multi-GPU lines (parsed above), and a command the README already ran
        seen.add(tuple(args))
        if args == ["presets", "validate", "-"]:
            shown = mirai("presets", "show", "mirai-e", "--resolved", cwd=tmp_path).stdout
            assert_ok(mirai(*args, input=shown, cwd=tmp_path))  # the README's pipe
            continue
        if not (any("tiny" in a for a in args) or args[0] == "presets"):
            continue  # ImageNet, public LlamaGen checkpoints, downloads: parsed above
        if args[0] == "ablate" and "--dry-run" not in args:
            continue  # a full study: the ablate tests run one
        if args[0] == "presets" and args[1] == "validate":
            (tmp_path / args[2]).write_text(mirai("presets", "show", "mirai-e", "--resolved", cwd=tmp_path).stdout)
        args = [hit for a in args for hit in (sorted(map(str, tmp_path.glob(a))) if "*" in a else [a])]
        takes_set = args[0] in ("train", "sample") or args[:2] in (["tokenize", "fit"], ["tokenize", "encode"])
        extra = [x for s in SHRINK for x in ("--set", s)] + ["--quiet"] if takes_set else []
        if args[0] == "eval":  # a few dozen images: small KID subsets, a few Inception Score splits
            extra = ["--kid-subset-size", "8", "--isc-splits", "2", "--ref-limit", "40"]
        result = mirai(*args, *extra, cwd=tmp_path, env=env)
        assert_ok(result)
        ran.append(args[:2])
    assert ["tokenize", "fit"] in ran and ["train", "--preset"] in ran and ["sample", "runs/tiny/mirai-e+tiny"] in ran
    # every output folder says how it was made (one manifest() for all commands)
    run = tmp_path / "runs/tiny/mirai-e+tiny"
    for path in (tmp_path / "runs/tiny/tokenizer/fit_summary.json", tmp_path / "runs/tiny/tokens/manifest.json",
                 run / "manifest.json", next(run.glob("samples/*/sample_manifest.json"))):
        made = json.loads(path.read_text())
        assert {"git_commit", "versions", "seed", "created", "kind"} <= set(made), path
        assert made["versions"]["mirai"] and made["versions"]["torch"], path


def test_the_committed_sweep_table_is_what_its_documented_command_prints():
    """docs/study_sweep.md is `python bench/study_paired.py table` over the committed rows and study files: a row
    recorded without regenerating the table (or a table edited by hand) fails here."""
    printed = subprocess.run([sys.executable, str(REPO / "bench" / "study_paired.py"), "table"], cwd=REPO,
                             env={"PYTHONPATH": str(REPO), "PATH": ""}, capture_output=True, text=True, check=True)
    assert printed.stdout == (REPO / "docs" / "study_sweep.md").read_text(), \
        "docs/study_sweep.md is stale: python bench/study_paired.py table > docs/study_sweep.md"
