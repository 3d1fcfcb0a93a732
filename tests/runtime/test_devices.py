"""Device and bf16 choice, decided from plain inputs (the asked device, the local rank, how many GPUs are visible,
a GPU's compute capability), so that the CUDA cases are tested on a machine without a GPU."""

import pytest
import torch

from mirai_cli.errors import MiraiError
from mirai_cli.runtime import device as devices
from mirai_cli.runtime.device import choose_device, cuda_bf16_is_native


@pytest.mark.parametrize("asked, local_rank, world_size, gpus, want", [
    ("cuda:1", 0, 1, 2, "cuda:1"),  # the index is kept (`mirai sample --device cuda:1`)
    ("cuda:0", 0, 1, 2, "cuda:0"),
    ("cuda", 0, 1, 2, "cuda:0"),
    ("cuda", 3, 4, 4, "cuda:3"),  # under torchrun: the local rank's GPU
    ("auto", 1, 2, 2, "cuda:1"),
    (None, 5, 8, 4, "cuda:1"),  # more local ranks than GPUs: round robin
    ("auto", 0, 1, 0, "cpu"),
    (None, 1, 2, 0, "cpu"),
    ("cpu", 0, 1, 2, "cpu"),  # asked for the CPU on a GPU machine
    ("cpu", 1, 2, 2, "cpu"),
])
def test_the_device_a_process_uses(asked, local_rank, world_size, gpus, want):
    assert choose_device(asked, local_rank=local_rank, world_size=world_size, gpus=gpus) == torch.device(want)


@pytest.mark.parametrize("asked, world_size, gpus, message", [
    ("cuda", 1, 0, "no CUDA GPU is visible"),
    ("cuda:1", 1, 0, "no CUDA GPU is visible"),
    ("cuda:2", 1, 2, "only 2 GPU"),
    ("cuda:1", 2, 2, "LOCAL_RANK"),  # every process would take the same GPU
    ("gpu", 1, 1, "unknown device 'gpu'"),
    ("cuda:x", 1, 1, "unknown device 'cuda:x'"),
])
def test_a_device_that_cannot_be_used_is_one_clear_error(asked, world_size, gpus, message):
    with pytest.raises(MiraiError, match=message):
        choose_device(asked, local_rank=0, world_size=world_size, gpus=gpus)


def test_resolve_device_on_this_machine_keeps_what_is_asked():
    assert devices.resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert devices.resolve_device("auto") == torch.device("cpu")
        with pytest.raises(MiraiError, match="no CUDA GPU"):
            devices.resolve_device("cuda:1")


@pytest.mark.parametrize("capability, native", [
    ((6, 1), False),  # P100/GTX 10xx
    ((7, 0), False),  # V100: torch emulates bf16 (is_bf16_supported() says True)
    ((7, 5), False),  # T4
    ((8, 0), True),  # A100
    ((8, 9), True),  # L4/L40
    ((9, 0), True),  # H100/H200
    ((12, 0), True),
])
def test_bf16_counts_only_native_support(capability, native):
    assert cuda_bf16_is_native(capability) is native


def test_bf16_asks_the_given_gpu_not_the_current_one(monkeypatch):
    """A machine with an A100 as GPU 0 and a T4 as GPU 1: the answer for cuda:1 is GPU 1's."""
    asked = []

    def capability(device=None):
        asked.append(device)
        return {0: (8, 0), 1: (7, 5)}[torch.device(device).index]

    monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
    assert devices.bf16_is_fast(torch.device("cuda", 1)) is False
    assert devices.bf16_is_fast(torch.device("cuda", 0)) is True
    assert [torch.device(d) for d in asked] == [torch.device("cuda", 1), torch.device("cuda", 0)]
