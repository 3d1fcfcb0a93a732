"""The training loop on a real (tiny) token store: loss goes down, exact resume, Mirai-E/I wiring,
checkpoints load into a plain GPT, and bad input gives one clear error."""

import json
from pathlib import Path

import pytest
import torch
from mirai_testdata import tiny_overrides

from mirai_cli.config import load_config
from mirai_cli.engine.trainer import train
from mirai_cli.errors import MiraiError
from mirai_cli.gpt.checkpoint import load_gpt_checkpoint
from mirai_cli.metrics.log import read_metrics


def config_for(tiny_store, run_dir, presets=("tiny",), **extra):
    return load_config(list(presets), tiny_overrides(tiny_store, run_dir, **extra))


def test_a_tiny_run_lowers_the_ntp_loss(tiny_store, tmp_path):
    config = config_for(tiny_store, tmp_path / "run", **{"train.duration": 40, "train.ckpt_every": 40,
                                                         "train.lr": 3e-3, "model.token_dropout": 0.0})
    result = train(config, progress=False)
    records = read_metrics(result.run_dir / "metrics.jsonl")
    first = sum(r["ntp"] for r in records[:3]) / 3
    last = sum(r["ntp"] for r in records[-3:]) / 3
    assert last < first - 0.3, (first, last)
    assert {"loss", "ntp", "lr", "grad_norm", "tokens_per_s", "step_time"} <= set(records[-1])


@pytest.mark.slow
def test_kill_and_resume_gives_the_same_losses(tiny_store, tmp_path):
    extra = {"train.duration": 6, "train.ckpt_every": 3}
    full = train(config_for(tiny_store, tmp_path / "full", ("mirai-e", "tiny"), **extra), progress=False)
    part = config_for(tiny_store, tmp_path / "part", ("mirai-e", "tiny"), **extra)
    train(part, stop_at=3, progress=False)
    resumed = train(part, resume=True, progress=False)
    assert resumed.step == 6
    a = read_metrics(full.run_dir / "metrics.jsonl")
    b = read_metrics(resumed.run_dir / "metrics.jsonl")
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        for key in ("loss", "ntp", "foresight", "grad_norm"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-5, abs=1e-6), (ra["step"], key)
    wa = load_gpt_checkpoint(full.run_dir, "raw")[0].state_dict()
    wb = load_gpt_checkpoint(resumed.run_dir, "raw")[0].state_dict()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6)


def test_mirai_e_logs_every_term_and_checkpoint_loads_into_plain_gpt(tiny_store, tmp_path):
    config = config_for(tiny_store, tmp_path / "e", ("mirai-e", "tiny"))
    result = train(config, progress=False)
    record = read_metrics(result.run_dir / "metrics.jsonl")[-1]
    assert {"ntp", "foresight", "foresight_h0", "foresight_h1", "foresight_h2", "loss"} <= set(record), record
    assert record["loss"] == pytest.approx(record["ntp"] + record["foresight"], rel=1e-4)
    for weights in ("ema", "raw"):
        gpt, cfg, meta = load_gpt_checkpoint(result.run_dir, weights)
        assert cfg.layers == 2 and meta["step"] == 6
        assert not any("projector" in k for k in gpt.state_dict())
    folder = sorted((result.run_dir / "checkpoints").iterdir())[-1]
    assert json.loads((folder / "meta.json").read_text())["foresight"]["source"] == "ema"
    assert (result.run_dir / "preset.toml").is_file() and (result.run_dir / "manifest.json").is_file()
    # keep_last = 2 of the checkpoints at steps 3 and 6
    assert len(list((result.run_dir / "checkpoints").glob("step_*"))) == 2


def test_warmup_turns_the_foresight_loss_off(tiny_store, tmp_path):
    config = config_for(tiny_store, tmp_path / "w", ("mirai-e", "tiny"), **{"foresight.warmup": 3})
    records = read_metrics(train(config, progress=False).run_dir / "metrics.jsonl")
    by_step = {r["step"]: r for r in records}
    assert "foresight" not in by_step[3] and by_step[3]["lambda"] == 0.0
    assert by_step[4]["foresight"] != 0.0 and by_step[4]["lambda"] == config.foresight.lambda_ > 0


def test_store_that_does_not_fit_the_preset(tiny_store, tmp_path):
    config = config_for(tiny_store, tmp_path / "x", **{"model.num_classes": 7})
    with pytest.raises(MiraiError, match="has 4 classes but model.num_classes = 7"):
        train(config, progress=False)
    config = config_for(tiny_store, tmp_path / "x", **{"tokenizer.codebook_size": 128})
    with pytest.raises(MiraiError, match="64-code tokenizer"):
        train(config, progress=False)
    config = config_for(tiny_store, tmp_path / "x", **{"data.image_size": 32, "foresight.encoder_resolution": 256})
    with pytest.raises(MiraiError, match="8x8 token grid but the preset expects 16x16"):
        train(config, progress=False)


def test_resume_with_another_preset_and_overwrite_are_refused(tiny_store, tmp_path):
    run = tmp_path / "r"
    train(config_for(tiny_store, run, **{"train.duration": 3}), progress=False)
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    with pytest.raises(MiraiError, match="already holds a run"):
        train(config_for(tiny_store, run, **{"train.duration": 3}), progress=False)
    with pytest.raises(MiraiError, match=r"another preset \(foresight.source = 'none' there, 'ema' now\)"):
        train(config_for(tiny_store, run, ("mirai-e", "tiny"), **{"train.duration": 3}), resume=True, progress=False)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tiny_store, tmp_path):
    config = config_for(tiny_store, tmp_path / "nan", **{"train.lr": 1e30, "train.grad_clip": 0.0,
                                                         "train.duration": 20, "train.ckpt_every": 1})
    with pytest.raises(MiraiError, match="loss became .* at step"):
        train(config, progress=False)
    # every checkpoint left behind holds finite weights
    gpt = load_gpt_checkpoint(tmp_path / "nan", "raw")[0]
    assert all(torch.isfinite(p).all() for p in gpt.parameters())


@pytest.mark.slow
def test_mirai_i_with_cached_and_online_teacher_agree(tiny_store, tmp_path):
    """The cached features are the online encoder's features of the same crops: same losses either way."""
    common = {"foresight.encoder": "tokenizer", "foresight.encoder_layer": 0, "foresight.k": 1, "train.duration": 3,
              "train.ckpt_every": 3, "tokenizer.checkpoint": str(tiny_store["tokenizer"])}
    cached = train(config_for(tiny_store, tmp_path / "c", ("mirai-i", "tiny"), **common,
                              **{"foresight.cache_teacher": True}), progress=False)
    online = train(config_for(tiny_store, tmp_path / "o", ("mirai-i", "tiny"), **common,
                              **{"foresight.cache_teacher": False}), progress=False)
    a = read_metrics(cached.run_dir / "metrics.jsonl")
    b = read_metrics(online.run_dir / "metrics.jsonl")
    assert len(a) == len(b) == 3  # every step logged by both
    for ra, rb in zip(a, b):
        assert ra["foresight"] == pytest.approx(rb["foresight"], rel=2e-3, abs=2e-3)  # float16 cache
    assert any(Path(tiny_store["store"], "teacher").iterdir())


def test_missing_encoder_weights_is_one_clear_error(tiny_store, tmp_path):
    config = config_for(tiny_store, tmp_path / "m", ("mirai-i", "tiny"),
                        **{"foresight.encoder": "dinov2-vit-s", "foresight.encoder_layer": 0, "foresight.encoder_resolution": 112})
    with pytest.raises(MiraiError, match="dinov2-vit-s"):
        train(config, progress=False)
    assert not (tmp_path / "m" / "checkpoints").exists()


def test_a_damaged_teacher_cache_is_computed_again_or_named(tiny_store, tmp_path, capsys):
    """A zero-byte shard of the Mirai-I feature cache is computed again (with a warning); a NaN in it stops the
    run naming the cache, not the learning rate."""
    import shutil

    import numpy as np

    from mirai_cli.files.atomic import save_npy

    store = tmp_path / "store"
    shutil.copytree(tiny_store["store"], store)
    common = {"foresight.encoder": "tokenizer", "foresight.encoder_layer": 0, "foresight.cache_teacher": True,
              "train.duration": 2, "train.ckpt_every": 2, "tokenizer.checkpoint": str(tiny_store["tokenizer"])}
    cfg = lambda run: config_for({**tiny_store, "store": store}, tmp_path / run, ("mirai-i", "tiny"), **common)  # noqa: E731
    train(cfg("a"), progress=False)
    shard = next((store / "teacher").glob("*/00000.npy"))
    good = np.load(shard)
    shard.write_bytes(b"")
    train(cfg("b"), progress=False)
    assert "cannot be read" in capsys.readouterr().err
    assert np.array_equal(np.load(shard), good)
    save_npy(shard, np.full_like(good, np.nan))
    with pytest.raises(MiraiError, match="teacher feature cache .* non-finite values .* delete it"):
        train(cfg("c"), progress=False)
