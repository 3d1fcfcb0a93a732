"""Target options: the encoder layer a target is read from, and its normalisation (none | layer | spatial),
on tiny real encoders (EfficientNet-Lite0's packaged weights, a random tiny DINOv2) and fixed numbers."""

import pytest
import torch
import torch.nn.functional as F

from mirai_cli.config import load_config
from mirai_cli.errors import ConfigError, MiraiError
from mirai_cli.foresight.teachers import ENCODER_SPECS, build_encoder
from mirai_cli.foresight.teachers.pixels import prepare_pixels
from mirai_cli.foresight.teachers.targets import TargetOptions, normalise_targets


def pixels(b=2, s=16, seed=0):
    return torch.rand(b, 3, s, s, generator=torch.Generator().manual_seed(seed))


def test_spatial_norm_on_fixed_numbers():
    # one image, 4 positions, 2 channels
    x = torch.tensor([[[1.0, 10.0], [2.0, 10.0], [3.0, 14.0], [6.0, 6.0]]])
    mean = torch.tensor([3.0, 10.0])
    std = torch.tensor([(4 + 1 + 0 + 9) / 3, (0 + 0 + 16 + 16) / 3]).sqrt()  # Bessel-corrected, as iREPA
    want = (x - 0.6 * mean) / (std + 1e-6)
    assert torch.allclose(normalise_targets(x, "spatial"), want)
    full = normalise_targets(x, "spatial", alpha=1.0)
    assert torch.allclose(full.mean(dim=1), torch.zeros(1, 2), atol=1e-6)
    assert torch.allclose(full.std(dim=1), torch.ones(1, 2), atol=1e-5)
    # every image on its own statistics
    two = normalise_targets(torch.cat([x, 5 * x + 3]), "spatial", alpha=1.0)
    assert torch.allclose(two[0], two[1], atol=1e-5)
    # a sequence teacher: statistics from positions 1.. only, position 0 normalised with them
    seq = torch.cat([torch.tensor([[[100.0, -100.0]]]), x], dim=1)
    out = normalise_targets(seq, "spatial", first=1)
    assert torch.allclose(out[:, 1:], want) and torch.allclose(out[0, 0], (seq[0, 0] - 0.6 * mean) / (std + 1e-6))


def test_layer_norm_and_none():
    x = torch.randn(2, 5, 7)
    assert torch.equal(normalise_targets(x, "none"), x)
    out = normalise_targets(x, "layer")
    assert torch.allclose(out.mean(-1), torch.zeros(2, 5), atol=1e-5)
    assert torch.allclose(out, F.layer_norm(x, (7,), eps=1e-6))
    with pytest.raises(MiraiError, match="target_norm"):
        TargetOptions(norm="batch")


@pytest.mark.parametrize("stride, dim", [(4, 24), (8, 40), (16, 112), (32, 320)])
def test_efficientnet_stage_at_the_input_size_that_gives_the_grid(stride, dim):
    enc = build_encoder("efficientnet-lite0", (2, 2), options=TargetOptions(layer=stride))  # packaged weights
    assert enc.input_size == (2 * stride, 2 * stride) and enc.teacher_dim == dim
    x = pixels()
    m = enc.backbone
    n_blocks = {4: 2, 8: 3, 16: 5, 32: 7}[stride]
    with torch.no_grad():
        h = m.bn1(m.conv_stem(prepare_pixels(x, enc.input_size, enc.spec.mean, enc.spec.std)))
        for block in m.blocks[:n_blocks]:
            h = block(h)
    assert h.shape[-2:] == (2, 2)  # exactly the token grid: no resampling
    assert torch.allclose(enc(x), h.flatten(2).transpose(1, 2), atol=1e-5)
    assert enc.cache_name == f"efficientnet-lite0-{2 * stride}x{2 * stride}-L{stride}"
    with pytest.raises(MiraiError, match="token grid"):
        build_encoder("efficientnet-lite0", (2, 2), resolution=4 * stride, options=TargetOptions(layer=stride))


def test_dinov2_block_with_the_final_norm():
    torch.manual_seed(0)
    enc = build_encoder("dinov2-vit-s", (2, 2), pretrained=False, options=TargetOptions(layer=5))
    for block in enc.backbone.blocks:  # random init has layer scale 1e-5 (blocks ~ identity): make them count
        block.ls1.gamma.data.fill_(1.0)
        block.ls2.gamma.data.fill_(1.0)
    last = build_encoder("dinov2-vit-s", (2, 2), pretrained=False)
    last.load_state_dict(enc.state_dict())
    x = pixels(2, 28)
    m = enc.backbone
    with torch.no_grad():
        h = m.patch_embed(prepare_pixels(x, (28, 28), enc.spec.mean, enc.spec.std))
        h = m._pos_embed(h)
        for block in m.blocks[:5]:
            h = block(h)
        want = m.norm(h)[:, m.num_prefix_tokens:]
        final = m.forward_features(prepare_pixels(x, (28, 28), enc.spec.mean, enc.spec.std))[:, m.num_prefix_tokens:]
    assert torch.allclose(enc(x), want, atol=1e-5)
    assert torch.allclose(last(x), final, atol=1e-5)  # default: the last block, the paper's target
    assert not torch.allclose(enc(x), last(x), atol=1e-3)
    with pytest.raises(MiraiError, match="block"):
        build_encoder("dinov2-vit-s", (2, 2), pretrained=False, options=TargetOptions(layer=13))


def test_encoder_output_is_normalised_and_cache_names_differ():
    x = pixels(2, 64)
    raw = build_encoder("efficientnet-lite0", (2, 2))
    spatial = build_encoder("efficientnet-lite0", (2, 2), options=TargetOptions(norm="spatial", norm_alpha=1.0))
    assert torch.allclose(spatial(x), normalise_targets(raw(x), "spatial", alpha=1.0), atol=1e-5)
    names = {build_encoder("efficientnet-lite0", (2, 2), options=o).cache_name for o in
             (TargetOptions(), TargetOptions(norm="spatial"), TargetOptions(norm="layer"), TargetOptions(layer=32))}
    assert len(names) == 4 and "efficientnet-lite0-64x64" in names


def test_schema_validates_layer_and_norm_in_one_line():
    base = ["mirai-i", "tiny"]  # the checks apply where the teacher is used (foresight.source = "encoder")
    # tiny's teacher is the stride-8 stage at 64 px (an 8x8 map on the 8x8 token grid)
    ok = load_config(base, ["foresight.target_norm=\"spatial\""])
    assert ok.foresight.encoder_layer == 8 and ok.foresight.encoder_resolution == 64
    stride16 = load_config(base, ["foresight.encoder_layer=16", "foresight.encoder_resolution=128"])
    assert stride16.foresight.encoder_layer == 16
    bad = {
        "foresight.encoder_layer=12": "takes a stage stride",
        "foresight.encoder_layer=16": "encoder_resolution = 64 gives efficientnet-lite1's stride-16 stage a 4x4 map",
        "foresight.target_norm=\"batch\"": "target_norm",
        "foresight.target_norm_alpha=2.0": "target_norm_alpha",
    }
    for override, message in bad.items():
        with pytest.raises(ConfigError, match=message) as info:
            load_config(base, [override])
        assert "\n" not in str(info.value)
    load_config(["tiny"], ["foresight.encoder_layer=16"])  # a baseline does not check a teacher it never uses
    with pytest.raises(ConfigError, match="no layer choice"):
        load_config(base, ["foresight.encoder=\"tokenizer\"", "foresight.encoder_layer=1"])
    with pytest.raises(ConfigError, match=r"block \(1..24\)"):
        load_config(base, ["foresight.encoder=\"dinov2-vit-l\"", "foresight.encoder_layer=25",
                           "foresight.encoder_resolution=112"])


def test_schema_registry_matches_the_encoders():
    from mirai_cli.config.schema import ENCODER_LAYERS

    assert set(ENCODER_LAYERS) == set(ENCODER_SPECS)


def test_preset_cache_name_matches_the_encoder_it_builds():
    from mirai_cli.foresight.teachers.build import target_options, teacher_cache_name

    config = load_config(["tiny"], ["foresight.encoder=\"efficientnet-lite0\"", "foresight.encoder_layer=8",
                                    "foresight.encoder_resolution=64", "foresight.target_norm=\"spatial\""])
    fc = config.foresight
    enc = build_encoder(fc.encoder, (config.grid, config.grid), resolution=fc.encoder_resolution,
                        options=target_options(config))
    assert teacher_cache_name(config) == enc.cache_name == "efficientnet-lite0-64x64-L8-spatial0.6"
