"""Preprocessing: ADM resize + centre crop, ten-crop order (as torchvision's TenCrop), flip, none."""

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from mirai_cli.data.crops import CROP_NAMES, center_crop_arr, make_crops, to_model_input
from mirai_cli.errors import MiraiError


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_center_crop_matches_adm_and_upsamples_small_images():
    img = _image(600, 401)
    out = center_crop_arr(img, 64)
    assert out.shape == (64, 64, 3)
    # ADM: box-halve while short side >= 2*size (401 -> 200 -> 100), bicubic to short side 64, centre cut
    pil = Image.fromarray(img).resize((200, 300), Image.BOX).resize((100, 150), Image.BOX)
    ref = np.asarray(pil.resize((64, 96), Image.BICUBIC))[16:80]
    assert np.array_equal(out, ref)
    small = center_crop_arr(_image(28, 28), 32)
    assert small.shape == (32, 32, 3)  # 28 px Fashion-MNIST upsampled to 32


def test_tencrop_order_is_torchvision_tencrop_of_the_1p1_crop():
    img = _image(300, 340, seed=3)
    crops = make_crops(img, 256, "tencrop")
    assert crops.shape == (10, 256, 256, 3) and crops.dtype == np.uint8
    big = center_crop_arr(img, int(256 * 1.1))
    assert big.shape[:2] == (281, 281)
    ref = T.TenCrop(256)(Image.fromarray(big))  # tl, tr, bl, br, centre, then the same of the flipped image
    for k in range(10):
        assert np.array_equal(crops[k], np.asarray(ref[k])), CROP_NAMES["tencrop"][k]
    assert np.array_equal(crops[0], big[:256, :256])
    assert np.array_equal(crops[1], big[:256, -256:])
    assert np.array_equal(crops[5], big[:256, ::-1][:, :256])  # top-left of the flipped image
    assert CROP_NAMES["tencrop"][4] == "center" and CROP_NAMES["tencrop"][9] == "center_flip"


def test_tencrop_custom_ratio():
    crops = make_crops(_image(50, 50), 32, "tencrop", crop_ratio=1.25)
    big = center_crop_arr(_image(50, 50), 40)
    assert np.array_equal(crops[3], big[-32:, -32:])


def test_flip_and_none_modes():
    img = _image(40, 50, seed=5)
    flip = make_crops(img, 32, "flip")
    base = center_crop_arr(img, 32)
    assert flip.shape == (2, 32, 32, 3)
    assert np.array_equal(flip[0], base) and np.array_equal(flip[1], base[:, ::-1])
    none = make_crops(img, 32, "none")
    assert none.shape == (1, 32, 32, 3) and np.array_equal(none[0], base)
    with pytest.raises(MiraiError, match="unknown crop mode"):
        make_crops(img, 32, "fivecrop")


def device_copies(fn):
    """Run fn, recording every tensor copy that crosses devices: (source dtype, source device, target device)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen = []

    class Copies(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            src = args[0] if args and isinstance(args[0], torch.Tensor) else None
            if src is not None and isinstance(out, torch.Tensor) and out.device != src.device:
                seen.append((src.dtype, src.device.type, out.device.type))
            return out

    with Copies():
        result = fn()
    return result, seen


def test_crops_travel_to_the_device_as_uint8_and_are_converted_there():
    crops = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    # "meta" stands for an accelerator on a CPU-only machine: a real device change, no data.
    x, seen = device_copies(lambda: to_model_input(crops, torch.device("meta")))
    assert seen == [(torch.uint8, "cpu", "meta")]  # a quarter of the float bytes cross
    assert x.device.type == "meta" and x.dtype == torch.float32 and x.shape == (3, 3, 8, 8)
    here = to_model_input(crops)
    assert torch.equal(to_model_input(crops, torch.device("cpu")), here)
    pixel = crops[0, 0, 0].astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    assert here.min() >= -1 and here.max() <= 1 and torch.equal(here[0, :, 0, 0], torch.from_numpy(pixel))


def test_encode_converts_the_crops_on_the_tokenizers_device(monkeypatch):
    import mirai_cli.tokenizer.encode as encode
    from mirai_cli.tokenizer.config import VQConfig
    from mirai_cli.tokenizer.vq_model import VQModel

    cfg = VQConfig(ch=8, ch_mult=(1, 2), num_res_blocks=1, decoder_num_res_blocks=1, z_channels=4, codebook_size=16,
                   codebook_dim=4, norm_groups=4)
    model = VQModel(cfg).eval()
    crops = np.random.default_rng(1).integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
    before = model.encode_to_codes(to_model_input(crops.reshape(6, 8, 8, 3))).view(2, 3, -1).numpy()
    given = []
    real = encode.to_model_input
    monkeypatch.setattr(encode, "to_model_input", lambda c, device=None: given.append(device) or real(c, device))
    codes = encode.encode_crops(model, crops, torch.device("cpu"), "fp32")
    assert given == [torch.device("cpu")]  # the uint8 crops go to the device, the floats are made there
    assert np.array_equal(codes, before)
