"""Resume reads a checkpoint memory-mapped: every tensor of it is backed by its file (pages are read as the
tensors are copied into the model and optimizer), not a whole copy in host RAM on every process (GPT-XXL:
~22 GB per rank)."""

from pathlib import Path

import pytest
import torch

from mirai_cli.engine.checkpoints import load_checkpoint, save_checkpoint
from mirai_cli.gpt import GPT, GPTConfig

MAPS = Path("/proc/self/maps")


def file_ranges(folder: Path) -> list[tuple[int, int]]:
    """Address ranges of this process mapped from files in `folder`."""
    out = []
    for line in MAPS.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[-1].startswith(str(folder)):
            start, stop = (int(x, 16) for x in parts[0].split("-"))
            out.append((start, stop))
    return out


def tensors(obj, path="state"):
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from tensors(v, f"{path}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from tensors(v, f"{path}[{i}]")


@pytest.mark.skipif(not MAPS.exists(), reason="reads the process's memory map (Linux)")
def test_resume_loads_every_checkpoint_tensor_memory_mapped_from_its_file(tmp_path):
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=64, num_classes=3, layers=2, dim=32, heads=2, grid=(4, 4))
    gpt = GPT(cfg)
    opt = torch.optim.AdamW(gpt.parameters())
    gpt(torch.randint(0, 64, (2, 16)), torch.tensor([0, 1])).logits.sum().backward()
    opt.step()
    state = {"model": gpt.state_dict(), "sample_ema": gpt.state_dict(), "optimizer": opt.state_dict(), "step": 1,
             "rng": torch.get_rng_state(), "objective": {"projectors.first.weight": torch.randn(8, 32)}}
    folder = save_checkpoint(tmp_path, 1, state, {}, cfg, keep_last=1)
    loaded = load_checkpoint(folder)
    ranges = file_ranges(folder)
    found = list(tensors(loaded))
    assert len(found) > 20 and {"model", "sample_ema", "optimizer", "rng", "objective"} <= set(loaded)
    in_ram = [name for name, t in found if t.numel() and not any(a <= t.data_ptr() < b for a, b in ranges)]
    assert in_ram == []
    assert torch.equal(loaded["optimizer"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(loaded["model"]["output.weight"], gpt.output.weight.detach())
