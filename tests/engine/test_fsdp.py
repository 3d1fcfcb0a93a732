"""FSDP2 (`train.parallel = "fsdp"`) under `torchrun --nproc_per_node 2` (gloo, CPU): the same losses and
weights as DDP, and its checkpoints resume on another number of processes."""

import json
import os
import subprocess
import sys

import pytest
import torch
from mirai_testdata import tiny_overrides

from mirai_cli.config import load_config
from mirai_cli.engine.trainer import train
from mirai_cli.gpt.checkpoint import load_gpt_checkpoint
from mirai_cli.metrics.log import read_metrics

NO_DROPOUT = {"model.class_dropout": 0.0, "model.token_dropout": 0.0, "model.resid_dropout": 0.0,
              "model.ffn_dropout": 0.0, "train.duration": 4, "train.ckpt_every": 2}


def torchrun(tiny_store, run_dir, port, *extra_args, **sets):
    args = []
    for item in tiny_overrides(tiny_store, run_dir, **{**NO_DROPOUT, **sets}):
        args += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "-m", "mirai_cli", "train", "--preset", "mirai-e", "--preset", "tiny", "--quiet", *args, *extra_args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return read_metrics(run_dir / "metrics.jsonl")


def assert_same_run(a, b, run_a, run_b, tol):
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        for key in ("loss", "ntp", "foresight", "grad_norm"):
            assert ra[key] == pytest.approx(rb[key], rel=tol, abs=tol), (ra["step"], key)
    for weights in ("raw", "ema"):
        wa = load_gpt_checkpoint(run_a, weights)[0].state_dict()
        wb = load_gpt_checkpoint(run_b, weights)[0].state_dict()
        assert wa.keys() == wb.keys()
        for key in wa:
            torch.testing.assert_close(wa[key], wb[key], rtol=tol, atol=tol)


@pytest.mark.slow
def test_fsdp_matches_ddp_and_resumes_in_one_process(tiny_store, tmp_path):
    ddp = torchrun(tiny_store, tmp_path / "ddp", 29561, **{"train.parallel": "ddp"})
    fsdp = torchrun(tiny_store, tmp_path / "fsdp", 29562, **{"train.parallel": "fsdp",
                                                              "train.activation_checkpointing": True})
    assert len(ddp) == 4
    for name in ("ddp", "fsdp"):
        assert json.loads((tmp_path / name / "manifest.json").read_text())["parallel"] == name
    assert_same_run(ddp, fsdp, tmp_path / "ddp", tmp_path / "fsdp", 1e-4)

    # 2 FSDP processes to step 2, then the rest in this one process.
    torchrun(tiny_store, tmp_path / "moved", 29563, "--stop-at", "2", **{"train.parallel": "fsdp"})
    config = load_config(["mirai-e", "tiny"], tiny_overrides(tiny_store, tmp_path / "moved",
                                                             **{**NO_DROPOUT, "train.parallel": "fsdp"}))
    result = train(config, resume=True, progress=False)
    assert result.step == 4
    moved = read_metrics(tmp_path / "moved" / "metrics.jsonl")
    assert_same_run(ddp, moved, tmp_path / "ddp", tmp_path / "moved", 1e-4)
