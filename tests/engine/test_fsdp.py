"""FSDP2 (`train.parallel = "fsdp"`) under `torchrun --nproc_per_node 2` (gloo, CPU): the same losses and
weights as DDP, in fp32 and in bf16 (where the fp32 RoPE table, teacher targets and EMA teacher must stay fp32),
and its checkpoints resume on another number of processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from clirun import torchrun_script
from mirai_testdata import tiny_overrides, write_store_info

from mirai_cli.config import load_config
from mirai_cli.engine.trainer import train
from mirai_cli.gpt.checkpoint import load_gpt_checkpoint
from mirai_cli.metrics.log import read_metrics
from mirai_cli.runtime.device import bf16_is_fast

HERE = Path(__file__).resolve().parent

NO_DROPOUT = {"model.class_dropout": 0.0, "model.token_dropout": 0.0, "model.resid_dropout": 0.0,
              "model.ffn_dropout": 0.0, "train.duration": 4, "train.ckpt_every": 2}


def torchrun(tiny_store, run_dir, *extra_args, **sets):
    """`mirai train` in 2 processes; --standalone picks a free port (a fixed one can be taken under load)."""
    args = []
    for item in tiny_overrides(tiny_store, run_dir, **{**NO_DROPOUT, **sets}):
        args += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
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
    ddp = torchrun(tiny_store, tmp_path / "ddp", **{"train.parallel": "ddp"})
    fsdp = torchrun(tiny_store, tmp_path / "fsdp", **{"train.parallel": "fsdp", "train.activation_checkpointing": True})
    assert len(ddp) == 4
    for name in ("ddp", "fsdp"):
        assert json.loads((tmp_path / name / "manifest.json").read_text())["parallel"] == name
    assert_same_run(ddp, fsdp, tmp_path / "ddp", tmp_path / "fsdp", 1e-4)

    # 2 FSDP processes to step 2, then the rest in this one process.
    torchrun(tiny_store, tmp_path / "moved", "--stop-at", "2", **{"train.parallel": "fsdp"})
    config = load_config(["mirai-e", "tiny"], tiny_overrides(tiny_store, tmp_path / "moved",
                                                             **{**NO_DROPOUT, "train.parallel": "fsdp"}))
    result = train(config, resume=True, progress=False)
    assert result.step == 4
    moved = read_metrics(tmp_path / "moved" / "metrics.jsonl")
    assert_same_run(ddp, moved, tmp_path / "ddp", tmp_path / "moved", 1e-4)


# FSDP bf16 all-gathers bf16 weights where DDP casts fp32 weights under autocast: the two agree to bf16 rounding,
# not exactly. Measured on this tiny run (3 steps): losses and grad norms within 3.3e-5 relative (foresight at
# step 0, near zero, 5e-5 absolute), weights within 2.4e-3 absolute. With the RoPE table and targets rounded to
# bf16 (the bug) the grad norm was 7e-4 and 1.6e-3 off at steps 1 and 2: the loss tolerance below catches that too.
BF16_LOSS_TOL = {"rel": 3e-4, "abs": 1e-4}
BF16_WEIGHT_TOL = {"rtol": 1e-2, "atol": 5e-3}


@pytest.mark.slow
def test_fsdp_bf16_keeps_rope_targets_and_teacher_in_fp32_and_matches_ddp(tiny_store, tmp_path):
    if not bf16_is_fast(torch.device("cpu")):
        pytest.skip("this CPU has no native bf16 (AMX/AVX512-BF16): train.precision=bf16 resolves to fp32 here")
    info = write_store_info(tiny_store, tmp_path / "store.json")
    torchrun_script(HERE / "fsdp_bf16_worker.py", info, tmp_path, 3)
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["world_size"] == 2
    fp32 = {"rope": "torch.float32", "targets": "torch.float32", "teacher_weights": ["torch.float32"]}
    for name in ("ddp", "fsdp"):
        assert record[name]["precision"] == "bf16"
        assert record[name]["dtypes"] == fp32, (name, record[name]["dtypes"])
    ddp, fsdp = record["ddp"], record["fsdp"]
    for a, b in zip(ddp["losses"], fsdp["losses"], strict=True):
        for key in ("loss", "ntp", "foresight", "grad_norm"):
            assert b[key] == pytest.approx(a[key], **BF16_LOSS_TOL), (key, a, b)
    assert ddp["weights"].keys() == fsdp["weights"].keys()
    for key, value in ddp["weights"].items():
        torch.testing.assert_close(torch.tensor(fsdp["weights"][key]), torch.tensor(value),
                                   **BF16_WEIGHT_TOL)
