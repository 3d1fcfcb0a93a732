"""The Mirai-I teachers behind the Teacher interface on a real tiny store: online and cached give the same
targets, with or without read-ahead."""

import numpy as np
import pytest
import torch
from mirai_testdata import tiny_overrides

from mirai_cli.config import load_config
from mirai_cli.data.store import TokenStore
from mirai_cli.engine.ema import EMA
from mirai_cli.foresight.teachers import CachedEncoderTeacher, OnlineEncoderTeacher, TargetBatch
from mirai_cli.foresight.teachers.build import build_teacher
from mirai_cli.gpt import GPT, GPTConfig


def test_online_and_cached_teachers_agree(tiny_store, tmp_path):
    sets = tiny_overrides(tiny_store, tmp_path / "run", **{"foresight.encoder": "tokenizer", "foresight.encoder_layer": 0,
                                                           "tokenizer.checkpoint": str(tiny_store["tokenizer"])})
    online_cfg = load_config(["mirai-i", "tiny"], sets + ["foresight.cache_teacher=false"])
    cached_cfg = load_config(["mirai-i", "tiny"], sets + ["foresight.cache_teacher=true"])
    store = TokenStore.open(online_cfg.data.store)
    gpt = GPT(GPTConfig(vocab_size=online_cfg.vocab_size, num_classes=10, layers=1, dim=32, heads=2,
                        grid=store.grid))
    online = build_teacher(online_cfg, store, gpt, torch.device("cpu"), make_ema=EMA, progress=False)
    cached = build_teacher(cached_cfg, store, gpt, torch.device("cpu"), make_ema=EMA, progress=False)
    assert isinstance(online, OnlineEncoderTeacher) and isinstance(cached, CachedEncoderTeacher)
    images, crops = np.array([3, 0, 5]), np.array([0, 0, 0])
    codes = torch.zeros(3, store.grid[0] * store.grid[1], dtype=torch.long)
    batch = TargetBatch(codes, torch.zeros(3, dtype=torch.long), images, crops)
    a, b = online.targets(batch), cached.targets(batch)
    assert a.dtype == b.dtype == torch.float32 and a.shape == b.shape == (3, 64, online.teacher_dim)
    assert ((a - b).abs() <= 2.0**-11 * a.abs() + 1e-5).all()  # float16 storage of the same fp32 targets
    # read-ahead (host, background thread in the engine) gives the same targets
    ahead = TargetBatch(batch.codes, batch.labels, images, crops, online.read_ahead(images, crops))
    assert ahead.teacher.dtype == torch.uint8 and torch.equal(online.targets(ahead), a)
    ahead_c = TargetBatch(batch.codes, batch.labels, images, crops, cached.read_ahead(images, crops))
    assert ahead_c.teacher.dtype == torch.float16 and torch.equal(cached.targets(ahead_c), b)
    assert online.ema is None and cached.ema is None  # no state of their own: nothing to update or save


def test_ema_teacher_shares_the_sampling_ema_only_with_the_same_decay(tiny_store, tmp_path):
    def teacher_for(decay):
        cfg = load_config(["mirai-e", "tiny"], tiny_overrides(tiny_store, tmp_path / "r", **{"foresight.ema_decay": decay}))
        store = TokenStore.open(cfg.data.store)
        gpt = GPT(GPTConfig(vocab_size=cfg.vocab_size, num_classes=10, layers=2, dim=32, heads=2, grid=store.grid))
        sample = EMA(gpt, 0.99)
        return build_teacher(cfg, store, gpt, torch.device("cpu"), make_ema=EMA, sample_ema=sample), sample

    same, sample = teacher_for(0.99)
    assert same.ema is sample
    other, sample = teacher_for(0.9)
    assert other.ema is not sample and other.ema.decay == pytest.approx(0.9)
