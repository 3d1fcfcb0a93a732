"""Shared test setup: CPU only, few threads (the machine has 2 cores), no network."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# Idle OpenMP threads sleep instead of spinning: spinning makes small ops crawl on a shared 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The user cache (mirai_cli/files/cache.py: store-check memos, eval features) of the tests is their own, so
# they neither read nor fill the user's; subprocesses of the CLI tests inherit it.
os.environ["MIRAI_CACHE"] = tempfile.mkdtemp(prefix="mirai-test-cache-")
atexit.register(shutil.rmtree, os.environ["MIRAI_CACHE"], True)
os.environ.setdefault("TORCH_HOME", os.path.join(os.path.dirname(__file__), ".torch_home_unused"))

try:
    import torch

    # One thread: the tiny test models gain nothing from more, and oversubscribed cores slow them badly.
    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


# ---- tiny real data shared by the engine/sampling/ablate tests ----------------------------------------------
import numpy as np  # noqa: E402,F401
import pytest  # noqa: E402
from mirai_testdata import make_class_images  # noqa: E402


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> dict:
    """A real token store: class images -> a tiny (randomly initialised) VQ -> encode. 8x8 tokens."""
    import torch

    from mirai_cli.tokenizer.checkpoint import save_tokenizer
    from mirai_cli.tokenizer.config import VQConfig
    from mirai_cli.tokenizer.encode import encode_store
    from mirai_cli.tokenizer.vq_model import VQModel

    root = tmp_path_factory.mktemp("tiny_store")
    images, labels = make_class_images(96, size=16)
    npz = root / "images.npz"
    np.savez(npz, images=images, labels=labels)
    torch.manual_seed(0)
    cfg = VQConfig(ch=16, ch_mult=(1, 2), num_res_blocks=1, decoder_num_res_blocks=1, z_channels=8,
                   codebook_size=64, codebook_dim=4, norm_groups=8)
    tok_path = root / "tokenizer.pt"
    save_tokenizer(tok_path, VQModel(cfg), cfg, {"image_size": 16})
    store = root / "store"
    encode_store(tok_path, str(npz), store, image_size=16, crop_mode="flip", batch_size=32, shard_size=40,
                 precision="fp32", device="cpu", show_progress=False)
    return {"root": root, "npz": npz, "tokenizer": tok_path, "store": store, "grid": 8, "codebook": 64, "classes": 4}


