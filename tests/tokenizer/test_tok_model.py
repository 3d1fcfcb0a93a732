"""The VQ model: LlamaGen names/shapes, quantiser math, golden codes and reconstruction."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tok_helpers import tiny_config

from mirai_cli.data.crops import to_model_input, to_uint8
from mirai_cli.errors import MiraiError
from mirai_cli.tokenizer.config import VQConfig
from mirai_cli.tokenizer.vq_model import VQModel

SHAPES = Path(__file__).resolve().parents[1] / "compat" / "llamagen_state_dict_shapes.json"
GOLDEN = Path(__file__).parent / "golden" / "tiny_vq.pt"


def test_vq8_and_free_configs():
    cfg = VQConfig.vq8()
    assert cfg.downsample == 8 and cfg.grid(256) == (32, 32)
    assert VQConfig.vq16().downsample == 16 and VQConfig.vq16().grid(256) == (16, 16)
    m = VQModel(tiny_config(ch_mult=(1, 2, 2)))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert m.encode_to_codes(x).shape == (2, 16)
    assert m.encoder_features(x).shape == (2, 8, 4, 4)
    with pytest.raises(MiraiError, match="norm_groups"):
        VQConfig(ch=24, norm_groups=32)
    with pytest.raises(MiraiError, match="multiple of the tokenizer's downsampling"):
        VQConfig.vq16().grid(100)


def test_vq8_layout_follows_llamagen():
    names = VQModel(VQConfig.vq8(ch=32, codebook_size=16)).state_dict()
    assert "encoder.conv_blocks.3.attn.1.q.weight" in names and "encoder.conv_blocks.4.res.0.conv1.weight" not in names
    assert "decoder.conv_blocks.0.attn.2.proj_out.weight" in names  # decoder attention at the lowest resolution
    assert "decoder.conv_blocks.3.upsample.conv.weight" not in names and "encoder.conv_blocks.3.downsample.conv.weight" not in names


def test_vq16_names_and_shapes_are_llamagens():
    ref = json.loads(SHAPES.read_text())["VQ-16"]
    model = VQModel(VQConfig.vq16())
    sd = model.state_dict()
    assert list(sd) == list(ref)
    assert {k: list(v.shape) for k, v in sd.items()} == ref
    assert sum(p.numel() for p in model.parameters()) == 71_883_403


def test_quantizer_is_nearest_l2_normalised_code_with_straight_through():
    torch.manual_seed(0)
    m = VQModel(tiny_config())
    m.train()
    z = torch.randn(3, 4, 2, 2, requires_grad=True)
    q = m.quantize(z)
    zn = F.normalize(z.detach().permute(0, 2, 3, 1).reshape(-1, 4), dim=-1)
    e = F.normalize(m.quantize.embedding.weight.detach(), dim=-1)
    expect = torch.cdist(zn, e).argmin(dim=1)
    assert torch.equal(q.codes.reshape(-1), expect)
    zq = e[expect]
    assert torch.allclose(q.z_q.detach().permute(0, 2, 3, 1).reshape(-1, 4), zq, atol=1e-6)
    assert torch.allclose(q.codebook_loss, ((zq - zn) ** 2).mean(), atol=1e-6)
    assert torch.allclose(q.commit_loss, 0.25 * ((zq - zn) ** 2).mean(), atol=1e-6)
    # straight-through: d(sum z_q)/dz equals d(sum normalize(z))/dz
    q.z_q.sum().backward()
    g_st = z.grad.clone()
    z2 = z.detach().clone().requires_grad_(True)
    F.normalize(z2, dim=1).sum().backward()
    assert torch.allclose(g_st, z2.grad, atol=1e-6)
    assert m.quantize.codebook_used[-12:].tolist() == expect.float().tolist()  # LlamaGen's usage buffer


def test_codes_round_trip_matches_forward():
    torch.manual_seed(0)
    m = VQModel(tiny_config()).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        rec, q = m(x)
    codes = m.encode_to_codes(x)
    assert torch.equal(codes, q.codes)
    assert torch.allclose(m.decode_codes(codes, (8, 8)), rec, atol=1e-5)
    assert torch.allclose(m.decode_codes(codes), rec, atol=1e-5)


def test_golden_encode_decode():
    g = torch.load(GOLDEN, weights_only=True)
    m = VQModel(VQConfig.from_dict(g["config"])).eval()
    m.load_state_dict(g["model"], strict=True)
    image = g["image"].numpy()
    codes = m.encode_to_codes(to_model_input(image))
    assert len(torch.unique(g["codes"])) > 4  # the golden data is not degenerate
    assert torch.equal(codes, g["codes"])
    recon = to_uint8(m.decode_codes(codes, (4, 4)))
    assert np.abs(recon.astype(int) - g["recon"].numpy().astype(int)).max() <= 1
