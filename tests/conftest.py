"""Shared test setup: CPU only, few threads (the machine has 2 cores), no network."""

import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# Idle OpenMP threads sleep instead of spinning: spinning makes small ops crawl on a shared 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TORCH_HOME", os.path.join(os.path.dirname(__file__), ".torch_home_unused"))

try:
    import torch

    # One thread: the tiny test models gain nothing from more, and oversubscribed cores slow them badly.
    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


# ---- tiny real data shared by the engine/sampling/ablate tests ----------------------------------------------
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def make_class_images(n: int, size: int = 16, num_classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Small RGB images whose content depends on the class (a bright square whose position and colour
    follow the label, on noise), so a generator has something real to learn."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    images = rng.integers(0, 60, size=(n, size, size, 3)).astype(np.uint8)
    half = size // 2
    for i, label in enumerate(labels):
        r, c = divmod(int(label) % 4, 2)
        colour = np.array([200, 80 + 40 * (label % 3), 255 - 50 * (label % 4)], dtype=np.uint8)
        images[i, r * half : (r + 1) * half, c * half : (c + 1) * half] = colour
    return images, labels.astype(np.int64)


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


def tiny_overrides(store_info: dict, run_dir, **extra) -> list[str]:
    """--set overrides that turn the `tiny` preset into a seconds-long CPU run on `tiny_store`."""
    sets = {
        "data.store": str(store_info["store"]), "data.image_size": 16, "tokenizer.ch_mult": [1, 2],
        "tokenizer.codebook_size": store_info["codebook"], "tokenizer.codebook_dim": 4, "tokenizer.ch": 16,
        "tokenizer.z_channels": 8, "model.layers": 2, "model.dim": 64, "model.heads": 2,
        "model.num_classes": store_info["classes"], "foresight.depth": 1, "foresight.projector_dim": 64,
        "foresight.warmup": 0, "eval.resize": 16,
        "train.global_batch_size": 16, "train.duration": 6, "train.ckpt_every": 3, "train.log_every": 1,
        "train.lr_warmup": 0, "train.precision": "fp32", "train.run_dir": str(run_dir), "train.eval_every": 3,
    }
    sets.update(extra)
    out = []
    for key, value in sets.items():
        text = str(value).lower() if isinstance(value, bool) else (f'"{value}"' if isinstance(value, str) else str(value))
        out.append(f"{key}={text}")
    return out
