"""Tokenizer checkpoints: ours, LlamaGen's {"model": sd} (strict), and clear errors for ones that do not fit."""

import pytest
import torch
from tok_helpers import tiny_config

from mirai_cli.errors import MiraiError
from mirai_cli.tokenizer.checkpoint import (
    load_tokenizer,
    load_tokenizer_with_extra,
    save_tokenizer,
)
from mirai_cli.tokenizer.config import VQConfig
from mirai_cli.tokenizer.vq_model import VQModel


def test_save_load_round_trip(tiny_tokenizer, tmp_path):
    path, model, cfg = tiny_tokenizer
    loaded, cfg2, extra = load_tokenizer_with_extra(path)
    assert cfg2 == cfg and extra == {"image_size": 16}
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    assert not loaded.training
    # a fit output folder works as well as its tokenizer.pt
    (tmp_path / "fitdir").mkdir()
    save_tokenizer(tmp_path / "fitdir" / "tokenizer.pt", model, cfg)
    assert load_tokenizer(tmp_path / "fitdir")[1] == cfg


def test_llamagen_vq16_checkpoint_loads_strict(tmp_path):
    torch.manual_seed(0)
    src = VQModel(VQConfig.vq16())
    path = tmp_path / "vq_ds16_c2i.pt"
    torch.save({"model": src.state_dict()}, path)  # the public file's layout
    model, cfg = load_tokenizer(path)
    assert cfg == VQConfig.vq16() and cfg.name == "VQ-16"
    sd = model.state_dict()
    for k in ("encoder.conv_in.weight", "quantize.embedding.weight", "decoder.conv_out.bias"):
        assert torch.equal(sd[k], src.state_dict()[k])
    with pytest.raises(MiraiError, match="decoder.conv_blocks.0.res.2"):  # a config that does not fit names it
        load_tokenizer(path, VQConfig.vq16(decoder_num_res_blocks=2))


def test_bare_state_dict_of_no_llamagen_size_needs_the_stated_config(tmp_path):
    cfg = tiny_config(ch=32, ch_mult=(1, 2, 2), codebook_size=48, norm_groups=32)
    sd = VQModel(cfg).state_dict()
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "bare.pt")  # DDP-style names
    # GroupNorm groups are not in the weights, even when every width divides by 32: never guessed.
    with pytest.raises(MiraiError, match=r"no LlamaGen size.*--set tokenizer\.size=custom --set tokenizer\.ch=32 "
                       r"--set tokenizer\.ch_mult=\[1,2,2\].*--set tokenizer\.norm_groups=<groups>") as e:
        load_tokenizer(tmp_path / "bare.pt")
    assert "\n" not in str(e.value)
    assert load_tokenizer(tmp_path / "bare.pt", stated=cfg)[1] == cfg
    small = tiny_config()
    torch.save(VQModel(small).state_dict(), tmp_path / "small.pt")
    with pytest.raises(MiraiError, match="tokenizer.*fit"):  # a stated config that does not fit names the key
        load_tokenizer(tmp_path / "small.pt", stated=cfg)
    assert load_tokenizer(tmp_path / "small.pt", small)[1] == small


def test_mismatched_config_names_first_key_and_both_shapes(tiny_tokenizer):
    path, _, _ = tiny_tokenizer
    with pytest.raises(MiraiError) as e:
        load_tokenizer(path, tiny_config(ch=32))
    msg = str(e.value)
    assert "encoder.conv_in.weight" in msg and "[16, 3, 3, 3]" in msg and "[32, 3, 3, 3]" in msg
    assert "\n" not in msg


def test_unreadable_or_missing_checkpoint(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"\x00garbage")
    with pytest.raises(MiraiError, match="cannot read tokenizer checkpoint"):
        load_tokenizer(tmp_path / "bad.pt")
    with pytest.raises(MiraiError, match="not found"):
        load_tokenizer(tmp_path / "missing.pt")
    torch.save({"model": {"foo": torch.zeros(1)}}, tmp_path / "foreign.pt")
    with pytest.raises(MiraiError, match="does not look like a LlamaGen VQ"):
        load_tokenizer(tmp_path / "foreign.pt")
