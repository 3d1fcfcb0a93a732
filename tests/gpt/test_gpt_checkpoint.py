"""GPT checkpoints: our safetensors / checkpoint folders / run folders, and LlamaGen .pt layouts."""

import argparse
import json
from pathlib import Path

import pytest
import torch

from mirai_cli.errors import MiraiError
from mirai_cli.gpt import GPT, GPTConfig
from mirai_cli.gpt.checkpoint import (
    ShapeHints,
    check_fits,
    infer_config,
    load_gpt_checkpoint,
    save_gpt_weights,
)

COMPAT = Path(__file__).resolve().parents[1] / "compat" / "llamagen_state_dict_shapes.json"
TINY = ShapeHints(model=(2, 128, 2), grid=(4, 4))  # what a preset says about make_model()'s shape


def make_model(seed=0, **kw) -> GPT:
    torch.manual_seed(seed)
    cfg = {"vocab_size": 50, "num_classes": 4, "layers": 2, "dim": 128, "heads": 2, "grid": (4, 4)}
    cfg.update(kw)
    model = GPT(GPTConfig(**cfg))
    with torch.no_grad():
        model.output.weight.normal_(0, 0.02)  # non-zero logits, so comparisons mean something
    return model.eval()


def logits(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, model.cfg.vocab_size, (2, model.cfg.seq_len), generator=g)
    return model(tokens, torch.tensor([0, 3])).logits


def write_ckpt_dir(folder: Path, raw: GPT, ema: GPT, step: int) -> Path:
    folder.mkdir(parents=True)
    save_gpt_weights(folder / "model.safetensors", raw)
    save_gpt_weights(folder / "ema.safetensors", ema)
    meta = {"gpt_config": raw.cfg.to_dict(), "step": step, "tokenizer": {"codebook_size": 50, "grid": [4, 4]}}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def test_safetensors_roundtrip(tmp_path):
    model = make_model(grid=(2, 8), class_rope="identity")
    path = save_gpt_weights(tmp_path / "w.safetensors", model)
    loaded, cfg, _ = load_gpt_checkpoint(path)
    assert cfg == model.cfg and not loaded.training
    torch.testing.assert_close(logits(loaded), logits(model), rtol=0, atol=0)
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write left no temp file


def test_run_dir_picks_newest_step_and_weights(tmp_path):
    raw, ema, old = make_model(0), make_model(1), make_model(2)
    write_ckpt_dir(tmp_path / "run" / "checkpoints" / "step_00000100", old, old, 100)
    write_ckpt_dir(tmp_path / "run" / "checkpoints" / "step_00001000", raw, ema, 1000)
    (tmp_path / "run" / "checkpoints" / "step_00002000").mkdir()  # an unfinished one (no meta.json)
    model, _, meta = load_gpt_checkpoint(tmp_path / "run")
    assert meta["step"] == 1000 and meta["weights"] == "ema" and meta["tokenizer"]["grid"] == [4, 4]
    torch.testing.assert_close(logits(model), logits(ema), rtol=0, atol=0)
    model, _, meta = load_gpt_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000100", weights="raw")
    torch.testing.assert_close(logits(model), logits(old), rtol=0, atol=0)
    (tmp_path / "run" / "checkpoints" / "step_00001000" / "ema.safetensors").unlink()
    with pytest.raises(MiraiError, match="weights raw"):
        load_gpt_checkpoint(tmp_path / "run")


@pytest.mark.parametrize("layout", ["model", "module", "state_dict", "bare", "ddp-prefix", "with-args"])
def test_llamagen_pt_layouts(tmp_path, layout):
    model = make_model()
    sd = dict(model.state_dict())
    sd["freqs_cis"] = torch.zeros(17, 32, 2)  # LlamaGen's rotary table: must be ignored
    obj = {
        "model": {"model": sd, "optimizer": {}, "steps": 5},
        "module": {"module": sd},
        "state_dict": {"state_dict": sd},
        "bare": sd,
        "ddp-prefix": {"model": {"module." + k: v for k, v in sd.items()}},
        "with-args": {"model": sd, "args": argparse.Namespace(lr=1e-4, global_batch_size=256)},
    }[layout]
    path = tmp_path / "c2i_T_64.pt"
    torch.save(obj, path)
    loaded, cfg, meta = load_gpt_checkpoint(path, hints=TINY)
    assert meta["format"] == "llamagen"
    assert (cfg.layers, cfg.dim, cfg.heads, cfg.vocab_size, cfg.num_classes, cfg.grid) == (2, 128, 2, 50, 4, (4, 4))
    torch.testing.assert_close(logits(loaded), logits(model), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["GPT-B", "GPT-L", "GPT-XL"])
def test_public_shapes_infer_the_named_config(name):
    shapes = json.loads(COMPAT.read_text())[name]
    sd = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    cfg = infer_config(sd, ShapeHints(grid=(16, 16)))
    assert cfg.name == name and cfg.heads == cfg.dim // 64
    with torch.device("meta"):
        check_fits(sd, GPT(cfg), "c2i.pt")  # strict: every key, every shape
    sd["layers.3.feed_forward.w1.weight"] = torch.empty(7, 7, device="meta")
    with torch.device("meta"), pytest.raises(MiraiError, match=r"layers\.3\.feed_forward\.w1\.weight.*\[7, 7\]"):
        check_fits(sd, GPT(cfg), "c2i.pt")


def test_grid_from_training_args_public_name_or_hint(tmp_path):
    sd = make_model().state_dict()
    args = argparse.Namespace(gpt_model="GPT-B", image_size=384, downsample_size=16)  # a custom size: not named
    torch.save({"model": sd, "args": argparse.Namespace(image_size=64, downsample_size=16)}, tmp_path / "run.pt")
    assert load_gpt_checkpoint(tmp_path / "run.pt", hints=TINY)[1].grid == (4, 4)  # the file's args decide
    torch.save({"model": sd}, tmp_path / "c2i_B_384.pt")  # LlamaGen's public name, but these are not GPT-B weights
    with pytest.raises(MiraiError, match="record its token grid"):
        load_gpt_checkpoint(tmp_path / "c2i_B_384.pt", hints=ShapeHints(model=(2, 128, 2)))
    torch.save({"model": sd}, tmp_path / "model.pt")
    assert load_gpt_checkpoint(tmp_path / "model.pt", hints=TINY)[1].grid == (4, 4)  # the user's
    with pytest.raises(MiraiError, match=r"record its token grid.*--set data\.image_size=") as e:
        load_gpt_checkpoint(tmp_path / "model.pt", hints=ShapeHints(model=(2, 128, 2)))
    assert "\n" not in str(e.value)
    torch.save({"model": sd, "args": args}, tmp_path / "liar.pt")
    with pytest.raises(MiraiError, match="args name GPT-B but its weights are 2 layers x 128"):
        load_gpt_checkpoint(tmp_path / "liar.pt")


def test_head_count_is_never_guessed(tmp_path):
    """A 2-head 128-wide model used to load as 1 head (dim / 64); now heads come from the user or it stops."""
    model = make_model()
    torch.save({"model": model.state_dict()}, tmp_path / "m.pt")
    with pytest.raises(MiraiError, match=r"head count is unknown.*--set model\.size=custom --set model\.layers=2 "
                       r"--set model\.dim=128 --set model\.heads=<heads>") as e:
        load_gpt_checkpoint(tmp_path / "m.pt", hints=ShapeHints(grid=(4, 4)))
    assert "\n" not in str(e.value)
    # A stated shape of other (layers, dim) says nothing about this file.
    with pytest.raises(MiraiError, match="head count is unknown"):
        load_gpt_checkpoint(tmp_path / "m.pt", hints=ShapeHints(model=(12, 768, 12), grid=(4, 4)))
    loaded, cfg, _ = load_gpt_checkpoint(tmp_path / "m.pt", hints=TINY)
    assert (cfg.layers, cfg.dim, cfg.heads) == (2, 128, 2)
    torch.testing.assert_close(logits(loaded), logits(model), rtol=0, atol=0)


def test_named_size_by_shapes_or_training_args(tmp_path):
    with torch.device("meta"):
        big = GPT(GPTConfig.named("GPT-B", vocab_size=64, num_classes=3, grid=(16, 16)))
    sd = {k: torch.empty(v.shape, device="meta") for k, v in big.state_dict().items()}
    cfg = infer_config(sd, source="c2i_B_384.pt")  # LlamaGen's public name gives the grid
    assert (cfg.name, cfg.heads, cfg.grid) == ("GPT-B", 12, (24, 24))
    with pytest.raises(MiraiError, match="token grid"):
        infer_config(sd, source="c2i_L_384.pt")  # a public name of another size says nothing about this file
    cfg = infer_config(sd, args={"gpt_model": "GPT-B", "image_size": 384, "downsample_size": 16})
    assert (cfg.name, cfg.grid) == ("GPT-B", (24, 24))
    cfg = infer_config(sd, ShapeHints(model=(12, 768, 6), grid=(16, 16)))  # the user's own 6-head GPT-B shape
    assert (cfg.heads, cfg.name) == (6, "custom")


def test_paper_checkpoint_projectors_are_dropped_and_reported(tmp_path):
    model = make_model()
    sd = dict(model.state_dict())
    sd.update({f"projectors.{k}.net.0.weight": torch.zeros(16, 128) for k in range(3)})
    sd["projectors.0.net.0.bias"] = torch.zeros(16)
    torch.save({"model": sd, "args": argparse.Namespace(image_size=64, downsample_size=16)}, tmp_path / "mirai.pt")
    loaded, _, meta = load_gpt_checkpoint(tmp_path / "mirai.pt", hints=TINY)
    assert meta["dropped"] == ["projectors"] and meta["dropped_tensors"] == 4
    torch.testing.assert_close(logits(loaded), logits(model), rtol=0, atol=0)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "w.safetensors"),
              metadata={"gpt_config": json.dumps(model.cfg.to_dict())})
    loaded, cfg, meta = load_gpt_checkpoint(tmp_path / "w.safetensors")
    assert cfg == model.cfg and meta["dropped"] == ["projectors"]


def test_mismatches_name_the_key_and_shapes(tmp_path):
    model = make_model()
    folder = write_ckpt_dir(tmp_path / "ck", model, model, 1)
    meta = json.loads((folder / "meta.json").read_text())
    meta["gpt_config"]["num_classes"] = 9
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(MiraiError, match=r"cls_embedding\.embedding_table\.weight.*\[5, 128\].*\[10, 128\]"):
        load_gpt_checkpoint(folder)

    sd = dict(model.state_dict())
    del sd["layers.1.ffn_norm.weight"]
    torch.save({"model": sd}, tmp_path / "missing.pt")
    with pytest.raises(MiraiError, match=r"layers\.1\.ffn_norm\.weight.*missing"):
        load_gpt_checkpoint(tmp_path / "missing.pt", hints=TINY)

    sd = dict(model.state_dict(), **{"extra.bias": torch.zeros(3)})
    torch.save(sd, tmp_path / "extra.pt")
    with pytest.raises(MiraiError, match=r"unexpected key 'extra\.bias'"):
        load_gpt_checkpoint(tmp_path / "extra.pt", hints=TINY)


def test_bad_paths(tmp_path):
    with pytest.raises(MiraiError, match="not found"):
        load_gpt_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(MiraiError, match="holds no checkpoint"):
        load_gpt_checkpoint(tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MiraiError, match="cannot read"):
        load_gpt_checkpoint(tmp_path / "junk.pt")
    torch.save({"model": {"a": torch.zeros(1)}}, tmp_path / "other.pt")
    with pytest.raises(MiraiError, match="does not look like a LlamaGen GPT"):
        load_gpt_checkpoint(tmp_path / "other.pt")
    with pytest.raises(MiraiError, match="'ema' or 'raw'"):
        load_gpt_checkpoint(tmp_path / "other.pt", weights="best")


def test_llamagen_3b_heads_are_not_64_wide():
    with torch.device("meta"):
        big = GPT(GPTConfig.named("GPT-3B", vocab_size=16384, num_classes=1000, grid=(24, 24)))
    sd = {k: torch.empty(v.shape, device="meta") for k, v in big.state_dict().items()}
    cfg = infer_config(sd, ShapeHints(grid=(24, 24)))
    assert (cfg.name, cfg.heads, cfg.head_dim, cfg.ffn_hidden) == ("GPT-3B", 32, 100, 8704)
