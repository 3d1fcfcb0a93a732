"""The teacher-feature cache next to a real (tiny) token store: exact crops, resume, identity checks."""

import json

import numpy as np
import pytest
import torch

from mirai_cli.data.crops import make_crops
from mirai_cli.data.store import TokenStore
from mirai_cli.errors import MiraiError
from mirai_cli.foresight.feature_cache import StorePixels, build_feature_cache, cache_path, open_feature_cache
from mirai_cli.foresight.teachers import build_encoder
from mirai_cli.foresight.teachers.pixels import uint8_to_unit
from mirai_cli.tokenizer.checkpoint import save_tokenizer
from mirai_cli.tokenizer.config import VQConfig
from mirai_cli.tokenizer.encode import encode_store
from mirai_cli.tokenizer.vq_model import VQModel


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 20, 24, 3), dtype=np.uint8)  # non-square: the crop matters
    np.savez(root / "data.npz", images=images, labels=np.array([0, 1, 2, 0, 1, 2, 0]))
    torch.manual_seed(0)
    cfg = VQConfig.tiny(ch=16, z_channels=16, codebook_size=64, norm_groups=8)
    vq = VQModel(cfg).eval()
    save_tokenizer(root / "vq.pt", vq, cfg, extra={"image_size": 16})
    encode_store(root / "vq.pt", str(root / "data.npz"), root / "store", image_size=16, crop_mode="flip",
                 batch_size=3, shard_size=4, precision="fp32", device="cpu", show_progress=False)
    return root, vq, images


def test_cache_holds_the_encoder_features_of_the_exact_crops(tiny_store):
    root, vq, images = tiny_store
    store = TokenStore.open(root / "store")
    enc = build_encoder("tokenizer", store.grid, tokenizer=vq)
    calls = []
    path = build_feature_cache(store, enc, batch_size=5, shard_entries=3, progress=lambda d, t: calls.append((d, t)))
    assert path == cache_path(root / "store", "tokenizer-16x16") and calls[-1] == (7, 7)
    cache = open_feature_cache(store, "tokenizer-16x16", expect_encoder={"weights_sha256": enc.weights_sha256})
    assert cache.shape == (7, 2, 16, 16) and cache.teacher_dim == 16
    for i, crop in [(0, 0), (4, 1), (6, 1)]:
        crops = make_crops(images[store.source_index[i]], 16, "flip")
        want = enc(uint8_to_unit(crops[crop:crop + 1]))[0]
        got = cache.get([i], [crop])[0].float()
        # the stated tolerance (feature_cache docstring): float16 storage of the same fp32 targets
        assert want.dtype == torch.float32
        assert ((got - want).abs() <= 2.0**-11 * want.abs() + 1e-5).all()
    # the online path sees the same pixels
    online = StorePixels(store).get([4], [1])
    assert torch.equal(online, uint8_to_unit(make_crops(images[store.source_index[4]], 16, "flip")[1:2]))
    batch = cache.get([6, 0, 3], [0, 1, 1])
    assert batch.shape == (3, 16, 16) and batch.dtype == torch.float16
    # the online Mirai-I path (pixels of the batch's crops -> encoder) gives the cached targets
    online_targets = enc(StorePixels(store).get([6, 0, 3], [0, 1, 1]))
    assert ((batch.float() - online_targets).abs() <= 2.0**-11 * online_targets.abs() + 1e-5).all()


def test_resume_redoes_only_missing_shards_with_the_same_bytes(tiny_store):
    root, vq, _ = tiny_store
    store = TokenStore.open(root / "store")
    enc = build_encoder("tokenizer", store.grid, tokenizer=vq)
    path = build_feature_cache(store, enc, shard_entries=3)  # complete already: returns at once
    before = np.load(path / "00001.npy")
    (path / "00001.done.json").unlink()  # as if killed while writing shard 1
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["status"] = "incomplete"
    (path / "manifest.json").write_text(json.dumps(manifest))
    seen = []
    build_feature_cache(store, enc, shard_entries=3, progress=lambda d, t: seen.append(d))
    assert seen[0] > 3 and seen[-1] == 7  # shards 0 and 2 were not recomputed
    assert np.array_equal(np.load(path / "00001.npy"), before)


def test_mismatches_are_one_clear_error(tiny_store, tmp_path):
    root, vq, _ = tiny_store
    store = TokenStore.open(root / "store")
    enc = build_encoder("tokenizer", store.grid, tokenizer=vq)
    build_feature_cache(store, enc, shard_entries=3)
    with pytest.raises(MiraiError, match="weights_sha256"):
        open_feature_cache(store, "tokenizer-16x16", expect_encoder={"weights_sha256": "0" * 64})
    with pytest.raises(MiraiError, match="cache_teacher = true"):
        open_feature_cache(store, "efficientnet-lite0-128x128")
    store.manifest = dict(store.manifest, crop_mode="none")  # codes from other crops than the cache's
    with pytest.raises(MiraiError, match="crop_mode"):
        open_feature_cache(store, "tokenizer-16x16")
    other = build_encoder("tokenizer", (2, 2), tokenizer=vq)
    with pytest.raises(MiraiError, match="grid"):
        build_feature_cache(TokenStore.open(root / "store"), other)


def test_other_target_options_make_another_cache(tiny_store):
    from mirai_cli.foresight.teachers.targets import TargetOptions

    root, vq, _ = tiny_store
    store = TokenStore.open(root / "store")
    default = build_encoder("tokenizer", store.grid, tokenizer=vq)
    fast = build_encoder("tokenizer", store.grid, tokenizer=vq, options=TargetOptions(precision="bf16"))
    assert default.cache_name == "tokenizer-16x16" and fast.cache_name == "tokenizer-16x16-bf16"
    a, b = build_feature_cache(store, default, shard_entries=3), build_feature_cache(store, fast, shard_entries=3)
    assert a != b and json.loads((b / "manifest.json").read_text())["encoder"]["precision"] == "bf16"
    assert json.loads((a / "manifest.json").read_text())["encoder"]["precision"] == "fp32"


@pytest.mark.parametrize("mode", ["tencrop", "flip", "none"])
def test_one_crop_alone_equals_that_crop_of_all(mode):
    from mirai_cli.data.crops import make_crop, num_crops

    image = np.random.default_rng(1).integers(0, 256, size=(37, 29, 3), dtype=np.uint8)
    every = make_crops(image, 16, mode)
    for c in range(num_crops(mode)):
        assert np.array_equal(make_crop(image, 16, mode, c), every[c])
    with pytest.raises(MiraiError, match="does not exist"):
        make_crop(image, 16, mode, num_crops(mode))


def test_online_pixels_threaded_equal_serial(tiny_store):
    root, _, images = tiny_store
    store = TokenStore.open(root / "store")
    idx, crops = [6, 0, 3, 3, 5], [1, 0, 1, 0, 0]
    serial = StorePixels(store, workers=1).get_uint8(idx, crops)
    threaded = StorePixels(store, workers=3).get_uint8(idx, crops)
    assert serial.dtype == torch.uint8 and torch.equal(serial, threaded)
    want = np.stack([make_crops(images[store.source_index[i]], 16, "flip")[c] for i, c in zip(idx, crops)])
    assert np.array_equal(serial.numpy(), want)


CACHE_RANK_SCRIPT = """
import sys
import torch
from mirai_cli.data.store import TokenStore
from mirai_cli.runtime.distributed import init_distributed
from mirai_cli.foresight.feature_cache import build_feature_cache
from mirai_cli.foresight.teachers import build_encoder
from mirai_cli.tokenizer.checkpoint import load_tokenizer
torch.set_num_threads(1)
vq_path, store_path, workers = sys.argv[1:4]
store = TokenStore.open(store_path)
enc = build_encoder("tokenizer", store.grid, tokenizer=load_tokenizer(vq_path)[0].eval())
build_feature_cache(store, enc, shard_entries=2, env=init_distributed("cpu"), num_workers=int(workers))
"""


@pytest.mark.slow
def test_two_ranks_with_worker_processes_write_the_one_process_cache(tiny_store, tmp_path):
    """torchrun --nproc_per_node 2 (gloo), crops decoded in 2 DataLoader workers per rank: every file of the
    cache (shards, markers, manifest) equals byte for byte the one a single process with no workers writes."""
    import os
    import shutil
    import subprocess
    import sys

    root, vq, _ = tiny_store
    one, two = tmp_path / "one", tmp_path / "two"
    for copy in (one, two):
        shutil.copytree(root / "store", copy, ignore=shutil.ignore_patterns("teacher"))
    enc = build_encoder("tokenizer", TokenStore.open(one).grid, tokenizer=vq)
    built = build_feature_cache(TokenStore.open(one), enc, shard_entries=2)
    script = tmp_path / "cache_rank.py"
    script.write_text(CACHE_RANK_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(root / "vq.pt"), str(two), "2"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    files = lambda p: {f.name: f.read_bytes() for f in sorted(p.iterdir())}  # noqa: E731
    other = cache_path(two, built.name)
    assert len(files(built)) == 9 and files(other) == files(built)  # 4 shards + 4 markers + manifest
    open_feature_cache(TokenStore.open(two), built.name)


def test_a_changed_source_stops_the_build_in_one_line(tiny_store, tmp_path):
    """A decoding problem found in the (threaded) loader reaches the caller as its one-line MiraiError."""
    import shutil

    root, vq, images = tiny_store
    shutil.copytree(root / "store", tmp_path / "store", ignore=shutil.ignore_patterns("teacher"))
    store = TokenStore.open(tmp_path / "store")
    store.labels = np.asarray(store.labels).copy()
    store.labels[3] = (store.labels[3] + 1) % 3
    enc = build_encoder("tokenizer", store.grid, tokenizer=vq)
    with pytest.raises(MiraiError, match="entry 3 of token store .* the source changed"):
        build_feature_cache(store, enc, shard_entries=2)
