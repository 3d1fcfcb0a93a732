"""Held-out validation images: a slice of a source that training never sees.

Built-in data sets take validation images from their own test split. Any other source (a folder, an .npz) is
split in two by a rule recorded in the split name, so that a token store's manifest reopens exactly its part:
    "train-holdout-N"   N images evenly spaced over the source (every class is represented in a sorted folder)
    "train-minus-N"     every other image (what training encodes)
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from mirai_cli.data.sources import ImageSource
from mirai_cli.errors import MiraiError

_SPLIT = re.compile(r"^(?P<base>[A-Za-z0-9_]+)-(?P<part>holdout|minus)-(?P<count>\d+)$")


def holdout_indices(total: int, count: int) -> np.ndarray:
    """`count` distinct indices spread evenly over [0, total)."""
    if not 0 < count < total:
        raise MiraiError(f"cannot hold out {count} of {total} images for validation: set data.val_images "
                         f"between 1 and {total - 1} (or 0 for no validation store)")
    return np.unique(np.floor(np.arange(count) * (total / count)).astype(np.int64))


def holdout_split(base: str, part: str, count: int) -> str:
    """The split name of one part ("holdout" or "minus") of `base` with `count` images held out."""
    return f"{base}-{part}-{count}"


def parse_holdout_split(split: str) -> tuple[str, str, int] | None:
    """(base split, part, count) of a held-out split name; None for a plain split such as 'train'."""
    m = _SPLIT.match(split)
    return (m["base"], m["part"], int(m["count"])) if m else None


class SubsetSource(ImageSource):
    """Entries `indices` of another source, renumbered 0..len-1."""

    def __init__(self, parent: ImageSource, indices: np.ndarray, split: str) -> None:
        self.parent, self.indices = parent, np.asarray(indices, np.int64)
        self.spec, self.split, self.class_names = parent.spec, split, list(parent.class_names)
        self.kind = parent.kind

    def __len__(self) -> int:
        return len(self.indices)

    def read(self, i: int) -> tuple[np.ndarray, int]:
        return self.parent.read(int(self.indices[i]))

    def label(self, i: int) -> int:
        return self.parent.label(int(self.indices[i]))

    def path_of(self, i: int) -> str:
        return self.parent.path_of(int(self.indices[i]))

    def to_manifest(self) -> dict[str, Any]:
        return self.parent.to_manifest() | {"split": self.split, "count": len(self)}


def training_and_validation_splits(source: str, split: str, val_images: int) -> tuple[str, str | None, int | None]:
    """(split training encodes, split of the validation images or None, how many of it to encode)."""
    from mirai_cli.data.builtin import BUILTIN

    if val_images <= 0:
        return split, None, None
    if source.partition(":")[0].lower() in BUILTIN and split == "train":
        return split, "test", val_images
    return holdout_split(split, "minus", val_images), holdout_split(split, "holdout", val_images), None


def select_part(parent: ImageSource, part: str, count: int, split: str) -> SubsetSource:
    held = holdout_indices(len(parent), count)
    if part == "holdout":
        return SubsetSource(parent, held, split)
    rest = np.setdiff1d(np.arange(len(parent), dtype=np.int64), held, assume_unique=True)
    return SubsetSource(parent, rest, split)
