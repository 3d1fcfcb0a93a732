"""Validation NLL runs where and how the run trained: on the model's device, in the run's autocast precision (an
ablation's evaluation round of a GPT-B in fp32 on the CPU would take tens of minutes)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mirai_testdata import tiny_overrides

from mirai_cli.ablate.runner import evaluate_checkpoint
from mirai_cli.config import load_config
from mirai_cli.data.store import TokenStore
from mirai_cli.engine.trainer import train
from mirai_cli.evaluation.nll import validation_nll
from mirai_cli.gpt.checkpoint import list_checkpoints, load_gpt_checkpoint
from mirai_cli.runtime.device import bf16_is_fast

needs_bf16 = pytest.mark.skipif(not bf16_is_fast(torch.device("cpu")),
                                reason="this CPU has no native bf16: train.precision=bf16 resolves to fp32 here")


def nll_by_hand(model, store, dtype):
    """Every token of every image (crop 0), the class given, under autocast to `dtype` (None: fp32)."""
    codes = torch.from_numpy(store.codes.get(np.arange(len(store)), np.zeros(len(store), int)).astype(np.int64))
    labels = torch.from_numpy(store.labels.astype(np.int64))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
        logits = model.eval()(codes, labels, class_drop=False).logits
    return F.cross_entropy(logits.float().flatten(0, 1), codes.flatten()).item()


@pytest.fixture(scope="module")
def trained(tiny_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("nll")
    config = load_config(["tiny"], tiny_overrides(tiny_store, root / "run", **{
        "train.duration": 2, "train.ckpt_every": 2, "train.precision": "bf16", "ablate.eval_samples_per_class": 0}))
    train(config, progress=False)
    return config, list_checkpoints(root / "run")[-1][1], TokenStore.open(tiny_store["store"])


@needs_bf16
def test_validation_nll_runs_in_the_precision_it_is_given(trained):
    config, folder, store = trained
    model = load_gpt_checkpoint(folder, "ema")[0]
    fp32, bf16 = validation_nll(model, store), validation_nll(model, store, precision="bf16")
    assert fp32 == pytest.approx(nll_by_hand(model, store, None), rel=1e-6)
    assert bf16 == pytest.approx(nll_by_hand(model, store, torch.bfloat16), rel=1e-6)
    assert bf16 != fp32 and math.isclose(bf16, fp32, rel_tol=1e-2)


@needs_bf16
def test_an_ablation_round_scores_on_the_runs_device_and_precision(trained, tmp_path):
    config, folder, store = trained
    record = evaluate_checkpoint(config, folder, tmp_path / "samples", None, None, store, "bf16-run")
    assert (record["val_device"], record["val_precision"]) == ("cpu", "bf16")  # where and how the run trained
    model = load_gpt_checkpoint(folder, config.sample.weights)[0]
    assert record["values"]["val_nll"] == pytest.approx(nll_by_hand(model, store, torch.bfloat16), rel=1e-6)
