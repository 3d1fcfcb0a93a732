"""Built-in data sets read from local files: Fashion-MNIST (the Debian package `dataset-fashion-mnist`,
or the four idx files under $MIRAI_DATA/fashion-mnist)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from mirai_cli.data.sources import ArraySource, ImageSource
from mirai_cli.errors import MiraiError

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot"]
FASHION_MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                       "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
SYSTEM_DIRS = [Path("/usr/share/datasets/fashion-mnist")]
BUILTIN = {"fashion-mnist"}


def fashion_mnist_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("MIRAI_DATA"):
        dirs.append(Path(os.environ["MIRAI_DATA"]).expanduser() / "fashion-mnist")
    return dirs + list(SYSTEM_DIRS)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def read_idx(path: Path) -> np.ndarray:
    """The MNIST idx format: 2 zero bytes, a dtype code (0x08 = uint8), the rank, big-endian sizes, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise MiraiError(f"cannot read {path}: {e} (the file is damaged; reinstall the data set)") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise MiraiError(f"{path} is not a uint8 idx file")
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank)
    if data.size != int(np.prod(dims)):
        raise MiraiError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {data.size}")
    return data.reshape(dims)


def open_fashion_mnist(split: str = "train") -> ImageSource:
    if split not in FASHION_MNIST_FILES:
        raise MiraiError(f"fashion-mnist has splits 'train' and 'test', not '{split}'")
    img_stem, lab_stem = FASHION_MNIST_FILES[split]
    for d in fashion_mnist_dirs():
        img, lab = _find(d, img_stem), _find(d, lab_stem)
        if img and lab:
            images, labels = read_idx(img), read_idx(lab)
            return ArraySource(images, labels, FASHION_MNIST_CLASSES, "fashion-mnist", split)
    looked = ", ".join(str(d) for d in fashion_mnist_dirs())
    raise MiraiError(f"Fashion-MNIST not found (looked in {looked}): run `apt-get install dataset-fashion-mnist`, "
                     "or put the four idx files (train-images-idx3-ubyte.gz, ...) from "
                     "github.com/zalandoresearch/fashion-mnist in $MIRAI_DATA/fashion-mnist")


def open_builtin(name: str, split: str = "train") -> ImageSource:
    if name == "fashion-mnist":
        src = open_fashion_mnist(split)
        src.kind = "builtin"
        return src
    raise MiraiError(f"unknown built-in data set '{name}': use one of {', '.join(sorted(BUILTIN))}")
