"""Image sources behind one interface: a folder of class subfolders, an .npz, or a built-in data set.

`open_source(spec)` picks the kind from the spec; `source.read(i)` gives (uint8 H,W,3 array, label)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mirai_cli.data.images import IMAGE_EXTENSIONS, image_files, read_image_file
from mirai_cli.errors import MiraiError


def to_rgb_uint8(arr: np.ndarray) -> np.ndarray:
    """Grayscale (H,W) or (H,W,1) becomes 3 identical channels; RGBA drops alpha."""
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        raise MiraiError(f"images must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise MiraiError(f"an image must be H,W or H,W,C; got shape {arr.shape}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    elif arr.shape[2] != 3:
        raise MiraiError(f"an image must have 1, 3 or 4 channels; got shape {arr.shape}")
    return np.ascontiguousarray(arr)


class ImageSource:
    """A labelled, indexable set of images. Subclasses set `spec`, `class_names` and implement `read`."""

    spec: str
    split: str
    class_names: list[str]

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, i: int) -> tuple[np.ndarray, int]:
        raise NotImplementedError

    def label(self, i: int) -> int:
        return self.read(i)[1]

    def path_of(self, i: int) -> str:
        """Where entry i comes from, for messages."""
        return f"{self.spec}[{i}]"

    def describe(self) -> str:
        return f"{self.kind} {self.spec} ({len(self)} images, {len(self.class_names)} classes)"

    def to_manifest(self) -> dict[str, Any]:
        """What a token store records to reopen this exact source later."""
        return {"kind": self.kind, "spec": self.spec, "split": self.split, "count": len(self),
                "num_classes": len(self.class_names)}

    kind = "source"


class FolderSource(ImageSource):
    """root/<class name>/<image files>; class index = position in the sorted subfolder names."""

    kind = "folder"

    def __init__(self, root: str | Path, split: str = "train") -> None:
        root = Path(root).expanduser().resolve()
        if not root.is_dir():
            raise MiraiError(f"image folder not found: {root}")
        self.spec, self.split = str(root), split
        classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        self.files: list[str] = []
        labels: list[int] = []
        names: list[str] = []
        for name in classes:
            files = image_files(root / name)
            if not files:
                continue
            names.append(name)
            self.files += files
            labels += [len(names) - 1] * len(files)
        if not self.files:
            loose = [p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
            if loose:
                raise MiraiError(f"images in {root} are unlabelled: put them in one subfolder per class "
                                 f"(e.g. {root}/cat/x.jpg, {root}/dog/y.jpg)")
            raise MiraiError(f"no images found in {root}: expected one subfolder per class holding image "
                             f"files ({', '.join(IMAGE_EXTENSIONS[:4])}, ...)")
        self.labels = np.asarray(labels, dtype=np.int64)
        self.class_names = names

    def __len__(self) -> int:
        return len(self.files)

    def path_of(self, i: int) -> str:
        return self.files[i]

    def label(self, i: int) -> int:
        return int(self.labels[i])

    def read(self, i: int) -> tuple[np.ndarray, int]:
        return read_image_file(self.files[i]), int(self.labels[i])


class ArraySource(ImageSource):
    """Images held in an array (N,H,W[,C]) uint8 with integer labels."""

    kind = "array"

    def __init__(self, images: np.ndarray, labels: np.ndarray, class_names: list[str] | None, spec: str,
                 split: str = "train") -> None:
        self.spec, self.split = spec, split
        if images.dtype != np.uint8:
            raise MiraiError(f"{spec}: images must be uint8, got {images.dtype}")
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3, 4)):
            raise MiraiError(f"{spec}: images must have shape (N,H,W,3) or (N,H,W); got {images.shape}")
        if len(images) == 0:
            raise MiraiError(f"{spec}: holds no images")
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(images):
            raise MiraiError(f"{spec}: {len(images)} images but {len(labels)} labels")
        if labels.dtype.kind not in "iu" or labels.min() < 0:
            raise MiraiError(f"{spec}: labels must be non-negative integers")
        self.images, self.labels = images, labels.astype(np.int64)
        n_cls = int(self.labels.max()) + 1
        if class_names is None:
            class_names = [str(i) for i in range(n_cls)]
        if len(class_names) < n_cls:
            raise MiraiError(f"{spec}: {len(class_names)} class names but labels go up to {n_cls - 1}")
        self.class_names = list(class_names)

    def __len__(self) -> int:
        return len(self.images)

    def label(self, i: int) -> int:
        return int(self.labels[i])

    def read(self, i: int) -> tuple[np.ndarray, int]:
        return to_rgb_uint8(self.images[i]), int(self.labels[i])


IMAGE_KEYS = ("images", "x", "arr_0", "data", "imgs")
LABEL_KEYS = ("labels", "y", "arr_1", "targets", "label")


class NpzSource(ArraySource):
    kind = "npz"

    def __init__(self, path: str | Path, split: str = "train") -> None:
        path = Path(path).expanduser().resolve()
        if not path.is_file():
            raise MiraiError(f".npz file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                ik = next((k for k in IMAGE_KEYS if k in keys), None)
                lk = next((k for k in LABEL_KEYS if k in keys), None)
                if ik is None:
                    raise MiraiError(f"{path}: no image array (looked for keys {', '.join(IMAGE_KEYS)}; "
                                     f"found {', '.join(keys) or 'none'})")
                if lk is None:
                    raise MiraiError(f"{path}: images are unlabelled (no key {', '.join(LABEL_KEYS)}): add an "
                                     "integer 'labels' array of length N")
                images, labels = z[ik], z[lk]
                names = [str(s) for s in z["class_names"]] if "class_names" in keys else None
        except MiraiError:
            raise
        except Exception as e:
            raise MiraiError(f"cannot read {path}: {type(e).__name__}: {e}") from e
        super().__init__(images, labels, names, str(path), split)


def open_source(spec: str, split: str = "train") -> ImageSource:
    """'fashion-mnist' (optionally 'fashion-mnist:test'), a path to an .npz, or a folder of class folders."""
    from mirai_cli.data.builtin import BUILTIN, open_builtin
    from mirai_cli.data.holdout import parse_holdout_split, select_part

    held = parse_holdout_split(split)
    if held is not None:
        base, part, count = held
        return select_part(open_source(spec, base), part, count, split)
    name, _, sub = spec.partition(":")
    if name.lower() in BUILTIN and not Path(spec).exists():
        return open_builtin(name.lower(), sub or split)
    p = Path(os.path.expanduser(spec))
    if p.suffix.lower() == ".npz":
        return NpzSource(p, split)
    if p.is_dir():
        return FolderSource(p, split)
    if p.exists():
        raise MiraiError(f"data source {spec} is neither a folder of class subfolders nor an .npz file")
    raise MiraiError(f"data source not found: {spec} (give a folder of class subfolders, an .npz file, "
                     f"or one of the built-in data sets: {', '.join(sorted(BUILTIN))})")
