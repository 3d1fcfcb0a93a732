"""`torchrun --nproc_per_node 2` (gloo, CPU) trains the same model as one process with the same global batch."""

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
              "model.ffn_dropout": 0.0, "train.duration": 4, "train.ckpt_every": 4}


@pytest.mark.slow
def test_two_processes_match_one(tiny_store, tmp_path):
    single = train(load_config(["mirai-e", "tiny"], tiny_overrides(tiny_store, tmp_path / "one", **NO_DROPOUT)),
                   progress=False)
    sets = []
    for item in tiny_overrides(tiny_store, tmp_path / "two", **NO_DROPOUT):
        sets += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "mirai_cli", "train", "--preset", "mirai-e", "--preset", "tiny", "--quiet", *sets]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    a = read_metrics(single.run_dir / "metrics.jsonl")
    b = read_metrics(tmp_path / "two" / "metrics.jsonl")
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        for key in ("loss", "ntp", "foresight"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-5), (ra["step"], key)
    wa = load_gpt_checkpoint(single.run_dir, "raw")[0].state_dict()
    wb = load_gpt_checkpoint(tmp_path / "two", "raw")[0].state_dict()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-4, atol=1e-5)
