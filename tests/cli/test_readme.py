"""The README's command lines cannot drift: every one parses against the real CLI (commands, options, presets),
and the tiny-preset walkthrough runs for real, as a user would type it (plus overrides that shrink it to seconds,
on a small Fashion-MNIST made by the test)."""

from __future__ import annotations

import gzip
import json
import re
import shlex
import struct
from pathlib import Path

import numpy as np
import pytest
import typer
from clirun import REPO, assert_ok, mirai
from mirai_testdata import make_class_images

from mirai_cli.cli.app import app
from mirai_cli.config import load_config


def readme_commands() -> list[str]:
    """Every `mirai ...` line of the README's bash blocks (continuation lines joined, comments dropped)."""
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if "mirai" in line and not line.startswith("#"):
                commands += [part.strip() for part in line.split(" | ")]  # each side of a pipe parses alone
    return commands


def _mirai_args(line: str) -> list[str] | None:
    """The arguments after `mirai` (or `-m mirai_cli`); None for lines that only install."""
    words = shlex.split(line.replace("...", "X"))
    for marker in ("mirai", "mirai_cli"):
        if marker in words:
            return words[words.index(marker) + 1:]
    return None


@pytest.mark.parametrize("line", readme_commands())
def test_every_readme_command_parses(line):
    args = _mirai_args(line)
    if args is None:
        return
    command = typer.main.get_command(app)  # typer's own (vendored) click: groups are told by resolve_command
    ctx = command.make_context("mirai", list(args), resilient_parsing=False)
    while hasattr(command, "resolve_command"):
        rest = [*(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])), *ctx.args]
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx)  # unknown options and bad values raise here
    assert not ctx.args, f"unexpected arguments {ctx.args}"
    presets = ctx.params.get("presets") or []
    if presets:
        load_config(list(presets), list(ctx.params.get("overrides") or []))


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
    ran = []
    for line in readme_commands():
        args = _mirai_args(line)
        if args is None or line.startswith("torchrun") or "--jobs" in args:
            continue  # installs, and multi-GPU lines (parsed above)
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
