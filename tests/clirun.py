"""Run `mirai` as a user does, in a subprocess, and check what a failure looks like: its exit code, one
`error:` line naming the problem, and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def mirai(*args: object, cwd: Path | None = None, timeout: float = 900, env: dict | None = None,
          input: str | None = None, preexec_fn=None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80", "CUDA_VISIBLE_DEVICES": "",
                "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "mirai_cli", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout, input=input, preexec_fn=preexec_fn)


def torchrun_script(script: Path, *args: object, nproc: int = 2, timeout: float = 600) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node N script args` on CPU processes (gloo); --standalone picks a free
    port (a fixed one can be taken under load). The script can import this folder's helpers. Asserts exit 0."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]), "CUDA_VISIBLE_DEVICES": "",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(nproc), str(script), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)
    # the head holds the first failing rank's own traceback, the tail torchrun's summary
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[:4000] + "\n...\n" + done.stderr[-1500:]
    return done


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str, code: int | None = None) -> str:
    """The command failed with a non-zero exit (`code` if given), printed no traceback, and said what is wrong
    in one `error:` line holding every fragment. Returns that line."""
    everything = result.stdout + result.stderr
    assert result.returncode != 0, everything
    if code is not None:
        assert result.returncode == code, everything
    assert "Traceback" not in everything, everything
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, everything
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def tiny_vq_args(root: Path, source: Path) -> list[str]:
    """--preset/--set options for a seconds-long tokenizer fit and encode of `source` into folders under `root`."""
    sets = {"data.source": source, "tokenizer.checkpoint": root / "tok", "data.store": root / "store",
            "data.image_size": 16, "tokenizer.ch": 16, "tokenizer.ch_mult": "[1, 2]", "tokenizer.z_channels": 8,
            "tokenizer.codebook_size": 64, "tokenizer.codebook_dim": 4, "tokenizer.fit_steps": 4,
            "tokenizer.fit_batch_size": 8, "train.precision": "fp32", "data.crop": "flip", "tokenizer.shard_size": 16,
            "model.num_classes": 4, "data.val_images": 0}
    args = ["--preset", "tiny"]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    return args


def hold_lock(folder: Path) -> subprocess.Popen:
    """A live process of this host that holds `folder`'s mirai lock (as a running job would); kill it to end it."""
    code = ("import sys, time; from mirai_cli.files.locks import acquire; acquire(sys.argv[1]); print('held', flush=True); "
            "time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc
