"""Every image mode PIL can return is read as the right uint8 RGB (or refused with one line): a 16-bit PNG must
not come out almost all white, as PIL's convert("RGB") makes it."""

import numpy as np
import pytest
from PIL import Image

from mirai_cli.data.images import UnreadableImage, pil_to_rgb
from mirai_cli.data.sources import open_source
from mirai_cli.errors import MiraiError

RGB = np.array([[[200, 30, 40], [10, 200, 90]], [[0, 0, 0], [255, 255, 255]]], np.uint8)
GRAY = np.array([[0, 64], [128, 255]], np.uint8)


def _ramp16():
    return np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)


def test_16_bit_png_keeps_its_values(tmp_path):
    ramp = _ramp16()
    (tmp_path / "c").mkdir()
    Image.fromarray(ramp).save(tmp_path / "c" / "ramp.png")
    with Image.open(tmp_path / "c" / "ramp.png") as im:
        assert im.mode.startswith("I;16")
    arr, _ = open_source(str(tmp_path)).read(0)
    want = np.rint(ramp / 257).astype(np.uint8)
    assert arr.shape == (64, 64, 3) and np.abs(arr[..., 0].astype(int) - want).max() <= 1
    assert (arr == 255).mean() < 0.01  # was 97% white


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L", "I"])
def test_high_bit_depth_integer_modes(mode):
    ramp = _ramp16().astype(np.int32 if mode == "I" else np.uint16)
    im = Image.fromarray(ramp).convert(mode) if mode != "I;16" else Image.fromarray(ramp)
    if mode in ("I;16B", "I;16L"):
        im = Image.frombytes(mode, (64, 64), ramp.astype(">u2" if mode == "I;16B" else "<u2").tobytes())
    arr = pil_to_rgb(im, "x.png")
    assert arr.dtype == np.uint8 and arr.shape == (64, 64, 3)
    assert np.abs(arr[..., 1].astype(int) - np.rint(ramp / 257)).max() <= 1


def test_32_bit_integer_out_of_16_bit_range_is_refused():
    im = Image.fromarray(np.full((4, 4), 70000, np.int32), "I")
    with pytest.raises(MiraiError, match="x.png: I image with values 70000..70000 is outside the 16-bit range"):
        pil_to_rgb(im, "x.png")


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_float_images_in_unit_or_byte_range(scale):
    values = GRAY.astype(np.float32) / 255.0 * scale
    arr = pil_to_rgb(Image.fromarray(values, "F"), "f.tif")
    assert (arr[..., 2] == GRAY).all()


def test_float_images_outside_both_ranges_are_refused():
    with pytest.raises(MiraiError, match="f.tif: 32-bit float"):
        pil_to_rgb(Image.fromarray(np.full((2, 2), 1000.0, np.float32), "F"), "f.tif")
    with pytest.raises(MiraiError, match="f.tif: 32-bit float"):
        pil_to_rgb(Image.fromarray(np.full((2, 2), np.nan, np.float32), "F"), "f.tif")


def _from_rgb(mode):
    rgb = Image.fromarray(RGB)
    if mode == "LAB":
        from PIL import ImageCms

        srgb, lab = ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB")
        return ImageCms.applyTransform(rgb, ImageCms.buildTransformFromOpenProfiles(srgb, lab, "RGB", "LAB"))
    return rgb.convert(mode)


@pytest.mark.parametrize("mode,tolerance", [("RGB", 0), ("RGBA", 0), ("RGBX", 0), ("CMYK", 0), ("YCbCr", 4),
                                            ("HSV", 8), ("LAB", 16), ("P", 0)])
def test_colour_modes_come_back_as_their_colours(mode, tolerance):
    im = _from_rgb(mode) if mode != "P" else Image.fromarray(RGB).quantize(colors=8)
    arr = pil_to_rgb(im, "x")
    assert arr.dtype == np.uint8 and arr.shape == RGB.shape
    assert np.abs(arr.astype(int) - RGB).max() <= tolerance, (mode, arr.tolist())


@pytest.mark.parametrize("mode", ["1", "L", "LA", "La", "PA", "RGBa"])
def test_gray_and_alpha_modes(mode):
    if mode == "1":
        im, want = Image.fromarray(GRAY >= 128), np.where(GRAY >= 128, 255, 0)
    elif mode == "RGBa":
        im, want = Image.fromarray(np.dstack([RGB, np.full(RGB.shape[:2], 255, np.uint8)]), "RGBA").convert("RGBa"), RGB
    elif mode == "PA":
        im, want = Image.fromarray(np.dstack([GRAY, np.full_like(GRAY, 255)]), "LA").convert("PA"), GRAY
    else:
        im, want = Image.fromarray(np.dstack([GRAY, np.full_like(GRAY, 255)]), "LA").convert(mode), GRAY
        if mode == "L":
            im = Image.fromarray(GRAY)
    arr = pil_to_rgb(im, "x")
    want = want if want.ndim == 3 else np.repeat(want[:, :, None], 3, axis=2)
    assert arr.shape == want.shape and (arr == want).all(), (mode, arr.tolist())


def test_a_refused_image_is_skipped_as_unreadable_with_its_path(tmp_path):
    (tmp_path / "c").mkdir()
    Image.fromarray(np.full((4, 4), 1000.0, np.float32), "F").save(tmp_path / "c" / "f.tif")
    with pytest.raises(UnreadableImage, match=r"f.tif: 32-bit float"):
        open_source(str(tmp_path)).read(0)
