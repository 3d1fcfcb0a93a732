"""Bad inputs: each is one MiraiError line, raised before (or instead of) a long extraction."""

from __future__ import annotations

import numpy as np
import pytest
from evalhelpers import images, write_folder, write_npz
from PIL import Image

from mirai_cli.errors import MiraiError
from mirai_cli.evaluation import compute_reference_stats, evaluate, open_images, open_reference
from mirai_cli.evaluation.npzfile import load_npz_array


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def test_empty_folder(tmp_path, tiny):
    (tmp_path / "empty").mkdir()
    write_npz(tmp_path / "ref.npz", images(8))
    with pytest.raises(MiraiError) as e:
        evaluate(tmp_path / "empty", tmp_path / "ref.npz", tiny())
    assert "no images in" in one_line(e) and "empty" in str(e.value)


def test_unreadable_image_named_before_extraction(tmp_path, tiny):
    folder = write_folder(tmp_path / "s", images(6))
    (folder / "00002.png").write_bytes(b"this is not a png")
    write_npz(tmp_path / "ref.npz", images(8))
    with pytest.raises(MiraiError) as e:
        evaluate(folder, tmp_path / "ref.npz", tiny())
    assert "not readable images" in one_line(e) and "00002.png" in str(e.value)


def test_truncated_image_named_at_decode(tmp_path, tiny):
    folder = write_folder(tmp_path / "s", images(6, size=32))
    data = (folder / "00003.png").read_bytes()
    (folder / "00003.png").write_bytes(data[: len(data) // 2])  # header intact, pixels cut
    write_npz(tmp_path / "ref.npz", images(8, size=32))
    with pytest.raises(MiraiError) as e:
        evaluate(folder, tmp_path / "ref.npz", tiny())
    assert "cannot decode image" in one_line(e) and "00003.png" in str(e.value)


def test_mixed_sizes_error_then_resize_policy(tmp_path, tiny):
    folder = write_folder(tmp_path / "s", images(5, size=16))
    Image.fromarray(images(1, size=24)[0]).save(folder / "odd.png")
    with pytest.raises(MiraiError) as e:
        open_images(folder)
    msg = one_line(e)
    assert "mixed image sizes" in msg and "24x24" in msg and "16x16" in msg and "--resize" in msg
    resized = open_images(folder, resize=16)
    assert len(resized) == 6 and resized.size == (16, 16)
    assert all(resized.read(i).shape == (16, 16, 3) for i in range(6))


def test_reference_at_another_resolution(tmp_path, tiny):
    write_npz(tmp_path / "s.npz", images(8, size=16))
    write_npz(tmp_path / "r.npz", images(8, size=32))
    with pytest.raises(MiraiError) as e:
        evaluate(tmp_path / "s.npz", tmp_path / "r.npz", tiny())
    msg = one_line(e)
    assert "32x32" in msg and "16x16" in msg and "--resize 16" in msg
    # the stated way out works
    r = evaluate(tmp_path / "s.npz", tmp_path / "r.npz", tiny(resize=16))
    assert r.ok and r.samples["image_size"] == [16, 16]


@pytest.mark.parametrize("kw,needle", [
    ({"metrics": ("kid",), "kid_subset_size": 50}, "KID subset size 50"),
    ({"metrics": ("isc",), "isc_splits": 20}, "IS with 20 splits"),
    ({"metrics": ("prc",), "prc_neighborhood": 12}, "precision/recall with k=12"),
])
def test_too_few_samples_for_metric(tmp_path, tiny, kw, needle, monkeypatch):
    write_npz(tmp_path / "s.npz", images(12))
    write_npz(tmp_path / "r.npz", images(30, seed=1))
    calls = []
    monkeypatch.setattr("mirai_cli.evaluation.compute.load_extractor", lambda *a, **k: calls.append(a))
    with pytest.raises(MiraiError) as e:
        evaluate(tmp_path / "s.npz", tmp_path / "r.npz", tiny(**kw))
    assert needle in one_line(e)
    assert calls == []  # refused before any extractor is built


def test_npz_problems(tmp_path, tiny):
    np.savez(tmp_path / "float.npz", arr_0=np.random.rand(4, 8, 8, 3).astype(np.float32))
    np.savez(tmp_path / "nokey.npz", images_wrong=np.zeros((4, 8, 8, 3), np.uint8))
    np.savez(tmp_path / "empty.npz", arr_0=np.zeros((0, 8, 8, 3), np.uint8))
    for name, needle in (("float", "must be uint8"), ("nokey", "expected an array 'arr_0'"), ("empty", "holds no images")):
        with pytest.raises(MiraiError) as e:
            open_images(tmp_path / f"{name}.npz")
        assert needle in one_line(e)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(MiraiError) as e:
        open_images(tmp_path / "junk.npz")
    assert "not a valid .npz" in one_line(e)


def test_missing_paths(tmp_path, tiny):
    with pytest.raises(MiraiError) as e:
        open_images(tmp_path / "nope")
    assert "samples not found" in one_line(e)
    with pytest.raises(MiraiError) as e:
        open_reference(str(tmp_path / "nope.npz"))
    assert "reference not found" in one_line(e) and "fashion-mnist" in str(e.value)


def test_unknown_metric_and_extractor(tmp_path, tiny):
    write_npz(tmp_path / "s.npz", images(8))
    with pytest.raises(MiraiError) as e:
        evaluate(tmp_path / "s.npz", tmp_path / "s.npz", tiny(metrics=("fid", "sfid")))
    assert "unknown metric" in one_line(e)
    with pytest.raises(MiraiError) as e:
        evaluate(tmp_path / "s.npz", tmp_path / "s.npz", tiny(extractor="vgg17"))
    assert "unknown feature extractor 'vgg17'" in one_line(e)


def test_stats_file_limits(tmp_path, tiny):
    write_npz(tmp_path / "s.npz", images(12))
    write_npz(tmp_path / "r.npz", images(12, seed=2))
    compute_reference_stats(tmp_path / "r.npz", tmp_path / "st.npz", tiny())  # mu/sigma only
    with pytest.raises(MiraiError) as e:
        evaluate(tmp_path / "s.npz", tmp_path / "st.npz", tiny(metrics=("fid", "kid")))
    assert "--features" in one_line(e)
    with pytest.raises(MiraiError) as e:
        evaluate(tmp_path / "s.npz", tmp_path / "st.npz", tiny(extractor="efficientnet-lite0"))
    assert "was made with tiny-test" in one_line(e)
    with pytest.raises(MiraiError) as e:
        compute_reference_stats(tmp_path / "st.npz", tmp_path / "again.npz", tiny())
    assert "holds statistics, not images" in one_line(e)


def test_uncompressed_npz_is_memory_mapped(tmp_path):
    arr = images(5, size=8)
    np.savez(tmp_path / "plain.npz", arr_0=arr)
    np.savez_compressed(tmp_path / "packed.npz", arr_0=arr)
    plain = load_npz_array(tmp_path / "plain.npz", "arr_0")
    packed = load_npz_array(tmp_path / "packed.npz", "arr_0")
    assert isinstance(plain, np.memmap) and not isinstance(packed, np.memmap)
    assert np.array_equal(plain, arr) and np.array_equal(packed, arr)


def test_mirai_sample_folder_uses_its_images(tmp_path):
    out = tmp_path / "samples"
    write_folder(out / "images", images(6, size=16))
    Image.fromarray(images(1, size=40)[0]).save(out / "grid.png")  # another size: would be "mixed sizes"
    (out / "sample_manifest.json").write_text("{}")
    found = open_images(out)
    assert len(found) == 6 and found.size == (16, 16) and found.origin.endswith("images")
