"""The "auto" settings: compile on CUDA only, a wider sampling batch on CUDA, sampling weights in the dtype the
decoding computes in. Each rule is one function of the device type, so the GPU choice is checked on a CPU."""

import pytest

from mirai_cli.config import load_config, shipped_preset_names
from mirai_cli.config.auto import resolve_compile, resolve_sample_batch, resolve_weights_dtype
from mirai_cli.errors import ConfigError


@pytest.mark.parametrize("setting, device, expected", [
    ("auto", "cuda", True), ("auto", "cpu", False), ("auto", "mps", False),
    (True, "cpu", True), (False, "cuda", False), (True, "cuda", True),
])
def test_compile_auto_is_on_on_cuda_only(setting, device, expected):
    assert resolve_compile(setting, device) is expected


def test_sample_batch_auto_is_wider_on_cuda():
    assert resolve_sample_batch("auto", "cuda") == 128
    assert resolve_sample_batch("auto", "cpu") == 32
    assert resolve_sample_batch(7, "cuda") == 7


@pytest.mark.parametrize("setting, precision, expected", [
    ("auto", "bf16", "bf16"), ("auto", "fp32", "fp32"), ("fp32", "bf16", "fp32"), ("bf16", "fp32", "bf16"),
])
def test_weights_dtype_auto_follows_the_compute_precision(setting, precision, expected):
    assert resolve_weights_dtype(setting, precision) == expected


@pytest.mark.parametrize("bad", ["maybe", 1.5, None])
def test_a_bad_value_is_refused(bad):
    with pytest.raises(ValueError):
        resolve_compile(bad, "cuda")


def test_the_schema_defaults_are_auto_and_every_preset_keeps_them():
    for name in shipped_preset_names():
        c = load_config([name])
        assert (c.train.compile, c.sample.compile, c.sample.weights_dtype) == ("auto",) * 3, name
        assert c.sample.batch_size == "auto" or "batch_size" in c.sample.model_fields_set, name  # tiny says 100


@pytest.mark.parametrize("text, value", [("true", True), ("false", False), ("auto", "auto"), ('"auto"', "auto")])
def test_compile_accepts_true_false_and_auto(text, value):
    c = load_config(["tiny"], [f"train.compile={text}", f"sample.compile={text}"])
    assert c.train.compile == value and c.sample.compile == value


def test_sample_batch_and_weights_dtype_accept_auto_or_a_value():
    c = load_config(["tiny"], ["sample.batch_size=8", "sample.weights_dtype=bf16"])
    assert (c.sample.batch_size, c.sample.weights_dtype) == (8, "bf16")
    for bad in ("sample.batch_size=0", "sample.compile=maybe", "sample.weights_dtype=fp16"):
        with pytest.raises(ConfigError):
            load_config(["tiny"], [bad])
