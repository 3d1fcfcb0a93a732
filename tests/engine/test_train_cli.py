"""`mirai train` as a user runs it (a subprocess): Ctrl-C, kill -9, a full disk, damaged or foreign inputs.
Each case: the exit code, one error line, no traceback, and nothing written before is lost."""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from mirai_testdata import tiny_overrides

from mirai_cli.gpt.checkpoint import list_checkpoints, load_gpt_checkpoint
from mirai_cli.metrics.log import read_metrics

ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}


def train_args(tiny_store, run_dir, *presets, **sets):
    args = ["train", "--quiet"]
    for preset in presets or ("tiny",):
        args += ["--preset", preset]
    for item in tiny_overrides(tiny_store, run_dir, **sets):
        args += ["--set", item]
    return args


def mirai(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "mirai_cli", *args], env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def assert_one_error_line(done, exit_code, *words):
    assert done.returncode == exit_code, (done.returncode, done.stdout[-1500:], done.stderr[-3000:])
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    for word in words:
        assert word in lines[0], (word, lines[0])


def start_and_wait_for_metrics(args, run_dir, lines=2):
    proc = subprocess.Popen([sys.executable, "-m", "mirai_cli", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while len(read_metrics(run_dir / "metrics.jsonl")) < lines:
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    return proc


def test_stop_at_below_one_is_an_error(tiny_store, tmp_path):
    done = mirai(*train_args(tiny_store, tmp_path / "r"), "--stop-at", "-3")
    assert_one_error_line(done, 2, "--stop-at", "-3")
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_ctrl_c_saves_and_exits_130_and_the_run_resumes(tiny_store, tmp_path):
    run = tmp_path / "run"
    args = train_args(tiny_store, run, **{"train.duration": 2000, "train.ckpt_every": 1000})
    proc = start_and_wait_for_metrics(args, run)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "interrupted, checkpoint saved" in out
    (step, folder), = list_checkpoints(run)
    assert 2 <= step < 2000 and (folder / "model.safetensors").is_file()
    resumed = mirai(*train_args(tiny_store, run, **{"train.duration": 2000, "train.ckpt_every": 1000}),
                    "--resume", "--stop-at", str(step + 2))
    assert resumed.returncode == 0, resumed.stderr
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == list(range(1, step + 3))


@pytest.mark.slow
def test_a_rerun_after_kill_9_before_the_first_checkpoint_does_not_repeat_steps(tiny_store, tmp_path):
    run = tmp_path / "run"
    args = train_args(tiny_store, run, **{"train.duration": 2000, "train.ckpt_every": 1000})
    proc = start_and_wait_for_metrics(args, run, lines=3)
    proc.kill()
    proc.communicate()
    assert not list_checkpoints(run)
    done = mirai(*train_args(tiny_store, run, **{"train.duration": 4, "train.ckpt_every": 4}))
    assert done.returncode == 0, done.stderr
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3, 4]


@pytest.mark.slow
def test_leftover_temporary_checkpoints_are_cleaned_at_the_next_start(tiny_store, tmp_path):
    run = tmp_path / "run"
    assert mirai(*train_args(tiny_store, run, **{"train.duration": 3})).returncode == 0
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = run / "checkpoints" / f".tmp_step_00000006_{dead.pid}"
    left.mkdir()
    (left / "model.safetensors").write_bytes(b"half a file")
    live = run / "checkpoints" / f".tmp_step_00000006_{os.getpid()}"  # a writer that is still running
    live.mkdir()
    done = mirai(*train_args(tiny_store, run, **{"train.duration": 4}), "--resume")
    assert done.returncode == 0, done.stderr
    assert not left.exists() and live.exists()


@pytest.mark.slow
def test_resuming_from_a_truncated_model_file_is_one_line(tiny_store, tmp_path):
    run = tmp_path / "run"
    assert mirai(*train_args(tiny_store, run, **{"train.duration": 3})).returncode == 0
    weights = run / "checkpoints" / "step_00000003" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    done = mirai(*train_args(tiny_store, run, **{"train.duration": 6}), "--resume")
    assert_one_error_line(done, 2, "model.safetensors", "step_00000003")
    assert [s for s, _ in list_checkpoints(run)] == [3]


def test_resuming_from_a_checkpoint_missing_its_ema_file_is_one_line(tiny_store, tmp_path):
    run = tmp_path / "run"
    assert mirai(*train_args(tiny_store, run, **{"train.duration": 3})).returncode == 0
    (run / "checkpoints" / "step_00000003" / "ema.safetensors").unlink()
    done = mirai(*train_args(tiny_store, run, **{"train.duration": 6}), "--resume")
    assert_one_error_line(done, 2, "ema.safetensors", "step_00000003", "delete that checkpoint folder")
    assert [s for s, _ in list_checkpoints(run)] == [3]


def encode_with_a_fresh_tokenizer(tiny_store, store: Path, seed: int) -> None:
    from mirai_cli.tokenizer.checkpoint import load_tokenizer, save_tokenizer
    from mirai_cli.tokenizer.encode import encode_store
    from mirai_cli.tokenizer.vq_model import VQModel

    _, cfg = load_tokenizer(tiny_store["tokenizer"])[:2]
    torch.manual_seed(seed)
    path = store.parent / f"tokenizer{seed}.pt"
    save_tokenizer(path, VQModel(cfg), cfg, {"image_size": 16})
    shutil.rmtree(store, ignore_errors=True)
    encode_store(path, str(tiny_store["npz"]), store, image_size=16, crop_mode="flip", batch_size=32,
                 shard_size=40, precision="fp32", device="cpu", show_progress=False)


@pytest.mark.slow
def test_resume_on_a_store_re_encoded_with_another_tokenizer_is_refused(tiny_store, tmp_path):
    store = tmp_path / "store"
    encode_with_a_fresh_tokenizer(tiny_store, store, seed=1)
    info = {**tiny_store, "store": store}
    run = tmp_path / "run"
    assert mirai(*train_args(info, run, **{"train.duration": 3})).returncode == 0
    encode_with_a_fresh_tokenizer(tiny_store, store, seed=2)
    done = mirai(*train_args(info, run, **{"train.duration": 6}), "--resume")
    assert_one_error_line(done, 2, "tokenizer", "re-encode")
    assert [s for s, _ in list_checkpoints(run)] == [3]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare to mount a small tmpfs")
def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(tiny_store, tmp_path):
    run = tmp_path / "disk" / "run"
    assert mirai(*train_args(tiny_store, run, **{"train.duration": 3})).returncode == 0
    before = {p.name: p.read_bytes() for p in (run / "checkpoints" / "step_00000003").iterdir()}
    used = sum(p.stat().st_size for p in run.rglob("*") if p.is_file())
    # A tmpfs holding the run with room for metrics but not for another checkpoint.
    size_kb = used // 1024 + 64
    inner = shlex.join(map(str, [sys.executable, "-m", "mirai_cli",
                                 *train_args(tiny_store, run, **{"train.duration": 6}), "--resume"]))
    script = (f"cp -a {run} {tmp_path}/copy && mount -t tmpfs -o size={size_kb}k tmpfs {tmp_path / 'disk'} && "
              f"mkdir -p {run} && cp -a {tmp_path}/copy/. {run}/ && {inner}; code=$?; "
              f"cp -a {run}/. {tmp_path}/after/ 2>/dev/null; exit $code")
    (tmp_path / "after").mkdir()
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=ENV, capture_output=True, text=True,
                          timeout=300)
    if "mount" in done.stderr and done.returncode == 32:
        pytest.skip("cannot mount a tmpfs here")
    assert_one_error_line(done, 2, "the disk is full", "step_00000003")
    after = tmp_path / "after"
    assert {p.name: p.read_bytes() for p in (after / "checkpoints" / "step_00000003").iterdir()} == before
    assert not list((after / "checkpoints").glob(".tmp_*"))
    assert load_gpt_checkpoint(after, "raw")[1].layers == 2
    assert all(np.isfinite(r["loss"]) for r in read_metrics(after / "metrics.jsonl"))
    json.loads((after / "manifest.json").read_text())


@pytest.mark.slow
def test_ablate_stops_on_ctrl_c_with_130_and_the_rerun_evaluates_every_round(tiny_store, tmp_path):
    """Ctrl-C in training used to save and run on, skipping that evaluation round for good."""
    sets = tiny_overrides(tiny_store, tmp_path / "unused", **{
        "train.duration": 200, "train.eval_every": 100, "train.ckpt_every": 100, "ablate.eval_samples_per_class": 3,
        "eval.reference": str(tiny_store["npz"]), "tokenizer.checkpoint": str(tiny_store["tokenizer"]),
        "eval.extractor": "efficientnet-lite0", "eval.kid_subset_size": 6, "eval.isc_splits": 2, "eval.batch_size": 12,
        "ablate.baseline_seeds": 1, "ablate.seeds": [0], "data.source": str(tiny_store["npz"]),
        "data.store": str(tmp_path / "store")})
    args = ["ablate", "--axis", "source", "--values", "ema", "--preset", "tiny", "--out", str(tmp_path / "study"),
            "--quiet"]
    for item in sets:
        args += ["--set", item]
    baseline = tmp_path / "study" / "runs" / "baseline"
    proc = start_and_wait_for_metrics(args, baseline, lines=3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, (out, err)
    assert not (baseline / "evals.jsonl").exists() and not (tmp_path / "study" / "runs" / "source-ema").exists()
    done = mirai(*args, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    # the terminal gets a short summary ending with the report's path, not the report's wide table
    assert done.stdout.splitlines()[-1].startswith("full report: ") and "| variant |" not in done.stdout
    for variant in ("baseline", "source-ema"):
        evals = read_metrics(tmp_path / "study" / "runs" / variant / "evals.jsonl")
        assert [r["step"] for r in evals] == [100, 200], variant
