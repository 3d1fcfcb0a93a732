"""Image sources: folder of class subfolders, .npz, built-in Fashion-MNIST; and their error messages."""

import gzip
import struct

import numpy as np
import pytest
from PIL import Image

from mirai_cli.data import builtin
from mirai_cli.data.images import UnreadableImage
from mirai_cli.data.sources import FolderSource, open_source
from mirai_cli.errors import MiraiError


def _write_idx(path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_folder_source_reads_classes_in_sorted_order(tmp_path):
    rng = np.random.default_rng(0)
    for cls, n in (("zebra", 2), ("ant", 3)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (20 + i, 30, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(tmp_path / "ant" / "gray.jpg")
    (tmp_path / "empty_class").mkdir()
    src = open_source(str(tmp_path))
    assert isinstance(src, FolderSource)
    assert src.class_names == ["ant", "zebra"]  # empty subfolders are not classes
    assert len(src) == 6
    labels = [src.read(i)[1] for i in range(len(src))]
    assert labels == [0, 0, 0, 0, 1, 1]
    gray = src.read(src.files.index(str(tmp_path / "ant" / "gray.jpg")))[0]
    assert gray.shape == (12, 12, 3) and gray.dtype == np.uint8
    assert np.array_equal(gray[..., 0], gray[..., 2])  # grayscale became 3 equal channels
    assert "6 images, 2 classes" in src.describe()


def test_folder_source_errors(tmp_path):
    with pytest.raises(MiraiError, match="no images found"):
        open_source(str(tmp_path))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "loose.png")
    with pytest.raises(MiraiError, match="unlabelled"):
        open_source(str(tmp_path))
    with pytest.raises(MiraiError, match="not found"):
        open_source(str(tmp_path / "nope"))


def test_folder_source_reports_unreadable_file_by_path(tmp_path):
    (tmp_path / "a").mkdir()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(tmp_path / "a" / "good.jpg", quality=95)
    data = (tmp_path / "a" / "good.jpg").read_bytes()
    (tmp_path / "a" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "a" / "garbage.png").write_bytes(b"not an image at all")
    src = open_source(str(tmp_path))
    bad = [src.files.index(str(tmp_path / "a" / n)) for n in ("truncated.jpg", "garbage.png")]
    for i in bad:
        with pytest.raises(UnreadableImage) as e:
            src.read(i)
        assert src.files[i] in str(e.value)
    assert src.read(src.files.index(str(tmp_path / "a" / "good.jpg")))[0].shape == (64, 64, 3)


def test_npz_source_rgb_and_grayscale(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (5, 9, 7, 3), dtype=np.uint8)
    np.savez(tmp_path / "rgb.npz", images=rgb, labels=np.array([0, 1, 2, 1, 0]))
    src = open_source(str(tmp_path / "rgb.npz"))
    img, label = src.read(2)
    assert np.array_equal(img, rgb[2]) and label == 2
    assert src.class_names == ["0", "1", "2"]
    gray = rgb[..., 0]
    np.savez(tmp_path / "gray.npz", x=gray, y=np.zeros(5, np.int64), class_names=np.array(["only"]))
    src = open_source(str(tmp_path / "gray.npz"))
    img, _ = src.read(4)
    assert img.shape == (9, 7, 3) and np.array_equal(img[..., 1], gray[4])
    assert src.class_names == ["only"]


def test_npz_source_errors(tmp_path):
    np.savez(tmp_path / "nolabels.npz", images=np.zeros((3, 4, 4, 3), np.uint8))
    with pytest.raises(MiraiError, match="unlabelled"):
        open_source(str(tmp_path / "nolabels.npz"))
    np.savez(tmp_path / "empty.npz", images=np.zeros((0, 4, 4, 3), np.uint8), labels=np.zeros(0, np.int64))
    with pytest.raises(MiraiError, match="no images"):
        open_source(str(tmp_path / "empty.npz"))
    np.savez(tmp_path / "float.npz", images=np.zeros((2, 4, 4, 3), np.float32), labels=np.zeros(2, np.int64))
    with pytest.raises(MiraiError, match="uint8"):
        open_source(str(tmp_path / "float.npz"))
    np.savez(tmp_path / "count.npz", images=np.zeros((2, 4, 4, 3), np.uint8), labels=np.zeros(3, np.int64))
    with pytest.raises(MiraiError, match="2 images but 3 labels"):
        open_source(str(tmp_path / "count.npz"))


def test_fashion_mnist_from_mirai_data(tmp_path, monkeypatch):
    d = tmp_path / "fashion-mnist"
    d.mkdir()
    rng = np.random.default_rng(1)
    train = rng.integers(0, 255, (6, 28, 28), dtype=np.uint8)
    _write_idx(d / "train-images-idx3-ubyte.gz", train)
    _write_idx(d / "train-labels-idx1-ubyte.gz", np.array([9, 0, 1, 2, 3, 4], np.uint8))
    _write_idx(d / "t10k-images-idx3-ubyte.gz", train[:2])
    _write_idx(d / "t10k-labels-idx1-ubyte.gz", np.array([5, 6], np.uint8))
    monkeypatch.setenv("MIRAI_DATA", str(tmp_path))
    monkeypatch.setattr(builtin, "SYSTEM_DIRS", [])
    src = open_source("fashion-mnist")
    assert len(src) == 6 and src.class_names[9] == "Ankle boot"
    img, label = src.read(0)
    assert img.shape == (28, 28, 3) and label == 9 and np.array_equal(img[..., 2], train[0])
    test = open_source("fashion-mnist:test")
    assert len(test) == 2 and test.read(1)[1] == 6
    assert open_source("fashion-mnist", split="test").split == "test"


def test_fashion_mnist_absent_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MIRAI_DATA", str(tmp_path))
    monkeypatch.setattr(builtin, "SYSTEM_DIRS", [tmp_path / "nowhere"])
    with pytest.raises(MiraiError, match="apt-get install dataset-fashion-mnist"):
        open_source("fashion-mnist")


def test_fashion_mnist_truncated_file(tmp_path, monkeypatch):
    d = tmp_path / "fashion-mnist"
    d.mkdir()
    _write_idx(d / "train-images-idx3-ubyte.gz", np.zeros((4, 28, 28), np.uint8))
    with gzip.open(d / "train-images-idx3-ubyte.gz") as f:
        raw = f.read()
    with gzip.open(d / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(raw[:-100])
    _write_idx(d / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    monkeypatch.setenv("MIRAI_DATA", str(tmp_path))
    monkeypatch.setattr(builtin, "SYSTEM_DIRS", [])
    with pytest.raises(MiraiError, match="truncated"):
        open_source("fashion-mnist")


@pytest.mark.skipif(not (builtin.SYSTEM_DIRS[0] / "train-labels-idx1-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_installed_fashion_mnist(monkeypatch):
    monkeypatch.delenv("MIRAI_DATA", raising=False)
    src = open_source("fashion-mnist")
    assert len(src) == 60000 and len(open_source("fashion-mnist:test")) == 10000
    img, label = src.read(0)
    assert img.shape == (28, 28, 3) and 0 <= label < 10
