"""The step's hot path: no host sync (every figure stays on the device until a log step) and data read ahead
in the background, batch for batch what the plan says."""

import contextlib
import threading

import numpy as np
import torch
from mirai_testdata import tiny_overrides

from mirai_cli.config import load_config
from mirai_cli.engine.prefetch import Prefetcher
from mirai_cli.engine.run import build_run
from mirai_cli.engine.step import train_step
from mirai_cli.runtime.distributed import init_distributed

# Every way a tensor's value reaches Python (each one waits for the device on a GPU).
HOST_READS = ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__index__")
# Every way host data becomes a tensor (on a GPU, torch.tensor(..., device=cuda) is a blocking host-to-device copy).
HOST_TENSORS = ("tensor", "as_tensor", "asarray", "from_numpy")
ONLINE_MIRAI_I = {"foresight.encoder": "tokenizer", "foresight.encoder_layer": 0, "foresight.cache_teacher": False}


@contextlib.contextmanager
def count_host_reads():
    calls = []
    originals = {name: getattr(torch.Tensor, name) for name in HOST_READS}

    def counting(name):
        def wrapper(self, *args, **kwargs):
            calls.append(name)
            return originals[name](self, *args, **kwargs)
        return wrapper

    for name in HOST_READS:
        setattr(torch.Tensor, name, counting(name))
    try:
        yield calls
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


@contextlib.contextmanager
def count_host_tensors():
    """Calls that build a tensor from host (non-tensor) data; wrapping a tensor that already exists is free."""
    calls = []
    originals = {name: getattr(torch, name) for name in HOST_TENSORS}

    def counting(name):
        def wrapper(data, *args, **kwargs):
            if not isinstance(data, torch.Tensor):
                calls.append(name)
            return originals[name](data, *args, **kwargs)
        return wrapper

    for name in HOST_TENSORS:
        setattr(torch, name, counting(name))
    try:
        yield calls
    finally:
        for name, original in originals.items():
            setattr(torch, name, original)


def build(tiny_store, tmp_path, presets, **extra):
    sets = {"train.log_every": 100, "train.micro_batch_size": 8, "train.grad_clip": 1.0, **extra}
    return build_run(load_config(list(presets), tiny_overrides(tiny_store, tmp_path, **sets)), init_distributed())


def test_the_counter_sees_a_host_read():
    with count_host_reads() as calls:
        float(torch.ones(()))
        torch.ones(2).sum().item()
    assert calls == ["__float__", "item"]


def test_the_counters_see_host_data_become_a_tensor():
    existing = torch.ones(2)
    with count_host_tensors() as calls:
        torch.tensor([0.5, 0.5])
        torch.as_tensor(existing)  # no copy: not counted
        torch.as_tensor(np.zeros(2))
    assert calls == ["tensor", "as_tensor"]


def test_a_step_reads_nothing_back_from_the_device_and_builds_no_tensor_from_host_data(tiny_store, tmp_path):
    for presets, extra in ((("mirai-e", "tiny"), {}), (("tiny",), {}), (("mirai-i", "tiny"), ONLINE_MIRAI_I)):
        sets = {**extra, "tokenizer.checkpoint": str(tiny_store["tokenizer"])} if extra else {}
        run = build(tiny_store, tmp_path / presets[0], presets, **sets)
        train_step(run, 0, [run.reader.to_device(b) for b in run.reader.read(0)])  # first step: lazy set-up
        batches = [run.reader.to_device(b) for b in run.reader.read(1)]
        with count_host_reads() as calls, count_host_tensors() as built:
            out = train_step(run, 1, batches)
        assert calls == [], (presets, calls)
        assert built == [], (presets, built)  # e.g. no per-micro-batch mean/std tensor of the online teacher
        assert out.losses.shape == (len(out.keys),)
        assert ("foresight" in out.keys) == (presets[0] != "tiny")
        reading = run.monitor.read(out.keys, out.losses, out.grad_norm, run.env, interrupted=False)
        assert not reading.diverged and np.isfinite(reading.losses["loss"])


def test_a_non_finite_step_is_remembered_on_the_device(tiny_store, tmp_path):
    run = build(tiny_store, tmp_path / "bad", ("tiny",))
    good, bad = torch.ones(2), torch.tensor([1.0, float("nan")])
    run.monitor.observe(0, good, torch.tensor(1.0))
    run.monitor.observe(1, bad, torch.tensor(1.0))
    run.monitor.observe(2, good, torch.tensor(float("inf")))
    reading = run.monitor.read(["a", "b"], good, torch.tensor(1.0), run.env, interrupted=True)
    assert reading.diverged and reading.first_bad_step == 1 and reading.stop


def test_prefetched_batches_are_the_plans_and_read_in_the_background(tiny_store, tmp_path):
    run = build(tiny_store, tmp_path / "p", ("mirai-e", "tiny"))
    readers = []
    original = run.reader.read
    run.reader.read = lambda step: (readers.append(threading.current_thread().name), original(step))[1]
    with Prefetcher(run.reader, end_step=4) as data:
        got = [data.get(step) for step in range(4)]
    assert all(name.startswith("mirai-prefetch") for name in readers) and len(readers) == 4
    for step, batches in enumerate(got):
        planned = run.plan.local_micro_batches(step)
        assert len(batches) == len(planned) == 2
        for batch, (images, crops) in zip(batches, planned):
            assert np.array_equal(batch.images, images) and np.array_equal(batch.crops, crops)
            want = torch.from_numpy(run.store.codes.get(images, crops).astype(np.int64))
            assert torch.equal(batch.codes, want)
            assert torch.equal(batch.labels, torch.from_numpy(run.store.labels[images].astype(np.int64)))


def test_a_run_sets_tf32_as_its_preset_says(tiny_store, tmp_path):
    """fp32 matmuls on CUDA in TF32 (LlamaGen's training does; the fp32 EMA teacher depends on it)."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        build(tiny_store, tmp_path / "off", ("tiny",), **{"train.tf32": False})
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        build(tiny_store, tmp_path / "on", ("tiny",))
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
