"""Tiny real tokenizers and image sets for the tokenizer tests."""

import pytest
import torch
from PIL import Image
from tok_helpers import shapes_images, tiny_config

from mirai_cli.tokenizer.checkpoint import save_tokenizer
from mirai_cli.tokenizer.vq_model import VQModel


@pytest.fixture
def tiny_tokenizer(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_config()
    model = VQModel(cfg)
    path = tmp_path / "tok.pt"
    save_tokenizer(path, model, cfg, {"image_size": 16})
    return path, model.eval(), cfg


@pytest.fixture
def image_folder(tmp_path):
    imgs, labels = shapes_images(11, size=20)
    root = tmp_path / "imgs"
    for i, (im, c) in enumerate(zip(imgs, labels)):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(root / f"class{c}" / f"{i:03d}.png")
    return root


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine, two OpenMP threads waiting on each other are several
    times slower than one for these tiny models."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
