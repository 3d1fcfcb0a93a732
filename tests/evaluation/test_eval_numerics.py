"""The arithmetic features are extracted in: fp32 with TF32 off (training switches TF32 on process-wide, and
ablate extracts in the same process), the caller's TF32 state restored after; and the reference-feature cache
tells apart features made on another device type or in another arithmetic."""

from __future__ import annotations

import json

import pytest
import torch
from evalhelpers import images

from mirai_cli.evaluation import evaluate, open_images
from mirai_cli.evaluation.cache import FeatureCache
from mirai_cli.evaluation.extractors import load_extractor
from mirai_cli.evaluation.features import extract_features, extraction_numerics
from mirai_cli.runtime.device import tf32


def tf32_flags() -> tuple[bool, bool]:
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


@pytest.fixture
def restore_tf32():
    before = tf32_flags()
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("state", [(True, True), (False, False), (True, False), (False, True)])
def test_tf32_context_sets_both_flags_and_restores_each(state, restore_tf32):
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = state
    for enabled in (False, True):
        with tf32(enabled):
            assert tf32_flags() == (enabled, enabled)
        assert tf32_flags() == state
    with pytest.raises(RuntimeError), tf32(False):
        raise RuntimeError("an extraction that fails")
    assert tf32_flags() == state


@pytest.mark.parametrize("state", [(True, True), (False, False)])
def test_features_are_extracted_with_tf32_off_whatever_the_caller_set(state, tiny_weights, restore_tf32):
    ext = load_extractor("tiny-test", ["feat"], weights=str(tiny_weights))
    seen = []
    ext.module.register_forward_pre_hook(lambda module, args: seen.append(tf32_flags()))
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = state
    feats = extract_features(open_images(images(10)), ext, device=torch.device("cpu"), batch_size=4)
    assert feats["feat"].shape == (10, 24)
    assert seen == [(False, False)] * 3  # every batch
    assert tf32_flags() == state


def test_reference_cache_key_holds_the_device_type_and_the_arithmetic():
    made = ("reference-sha", "tiny-test", "weights-sha")
    cpu = FeatureCache.key(*made, extraction_numerics(torch.device("cpu")))
    cuda = FeatureCache.key(*made, extraction_numerics(torch.device("cuda")))
    assert cpu != cuda  # CPU-made reference features never meet GPU-made sample features
    assert cuda == FeatureCache.key(*made, extraction_numerics(torch.device("cuda", 1)))  # any GPU of a kind
    assert "fp32" in extraction_numerics(torch.device("cpu")) and "TF32 off" in extraction_numerics(torch.device("cpu"))
    assert FeatureCache.key(*made, "cpu: bf16") != cpu


def test_the_cache_entry_records_how_its_features_were_made(tiny, tmp_path):
    result = evaluate(images(12, seed=1), images(12, seed=2), tiny(device="cpu"))
    assert result.ok
    [entry] = (tmp_path / "cache" / "features").iterdir()
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["numerics"] == extraction_numerics(torch.device("cpu"))
