"""Image sets to evaluate: a folder of images, an .npz (`arr_0`), an in-memory array, or a data source.

Every set is checked before any feature is extracted (empty, unreadable files, mixed sizes), so a bad
input fails in seconds with one line, not after an hour of Inception.

Resize policy: images are never resized silently. All images of a set must share one size, and samples and
reference must match. `resize=S` resizes every image ADM-style (box-halve while the short side is >= 2S,
bicubic to S, centre crop); the extractor then resizes to its own input (299 px for Inception) exactly as
torch-fidelity does."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from mirai_cli.data.crops import center_crop_arr
from mirai_cli.data.images import IMAGE_EXTENSIONS, image_files, read_image_file
from mirai_cli.data.sources import to_rgb_uint8
from mirai_cli.errors import MiraiError
from mirai_cli.evaluation.npzfile import load_npz_array, npz_keys
from mirai_cli.files.hashing import HashMemo, sha256_bytes

RESIZE_POLICY = ("no silent resizing: one size per set and the same size for samples and reference; "
                 "--resize S resizes every image (ADM centre crop to SxS)")

Size = tuple[int, int]  # (height, width)
# The layout `mirai sample` writes (mirai_cli/sampling/outputs.py): manifest, images/, samples.npz, grid.png.
SAMPLE_MANIFEST, SAMPLE_IMAGES = "sample_manifest.json", "images"


def _fmt(size: Size) -> str:
    return f"{size[1]}x{size[0]}"


class _Backend:
    """Where the pixels come from. `read(i)` gives uint8 H,W,3 at the native size."""

    kind = "?"
    origin = "?"
    sizes: Counter  # size -> count
    examples: dict  # size -> where() of one image with that size

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def where(self, i: int) -> str:
        return f"{self.origin}[{i}]"

    def content_id(self, memo: HashMemo) -> str:
        raise NotImplementedError


class _FolderBackend(_Backend):
    kind = "folder"

    def __init__(self, root: Path) -> None:
        self.origin = str(root)
        files = image_files(root)
        if not files:
            raise MiraiError(f"no images in {root} (looked for {', '.join(IMAGE_EXTENSIONS)}, also in subfolders)")
        self.files = files
        self.sizes, self.examples = Counter(), {}
        bad: list[tuple[str, str]] = []
        for path in files:  # headers only: cheap, and catches non-images before extraction starts
            try:
                with Image.open(path) as im:
                    size = (im.height, im.width)
            except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError... for bad files
                bad.append((path, str(e) or type(e).__name__))
                continue
            self.sizes[size] += 1
            self.examples.setdefault(size, path)
        if bad:
            path, reason = bad[0]
            raise MiraiError(f"{len(bad)} of {len(files)} files in {root} are not readable images, first: {path} "
                             f"({reason}); remove or replace them")

    def __len__(self) -> int:
        return len(self.files)

    def where(self, i: int) -> str:
        return self.files[i]

    def read(self, i: int) -> np.ndarray:
        return read_image_file(self.files[i])

    def content_id(self, memo: HashMemo) -> str:
        root = self.origin
        lines = [f"{os.path.relpath(f, root)}\0{memo.sha256(f)}" for f in self.files]
        return sha256_bytes("\n".join(lines).encode())


class _ArrayBackend(_Backend):
    kind = "array"

    def __init__(self, images: np.ndarray, origin: str, file: Path | None = None) -> None:
        self.origin, self.file = origin, file
        self.kind = "npz" if file is not None else "array"
        if images.dtype != np.uint8:
            raise MiraiError(f"{origin}: images must be uint8 in 0..255, got dtype {images.dtype} "
                             f"(convert with (x * 255).round().clip(0, 255).astype(np.uint8))")
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
            raise MiraiError(f"{origin}: expected images of shape (N,H,W,3) or (N,H,W), got {images.shape}")
        if images.shape[0] == 0:
            raise MiraiError(f"{origin}: holds no images (shape {images.shape})")
        self.images = images
        size = (int(images.shape[1]), int(images.shape[2]))
        self.sizes, self.examples = Counter({size: int(images.shape[0])}), {size: f"{origin}[0]"}

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def read(self, i: int) -> np.ndarray:
        return to_rgb_uint8(np.asarray(self.images[i]))

    def content_id(self, memo: HashMemo) -> str:
        if self.file is not None:
            return memo.sha256(self.file)
        arr = np.ascontiguousarray(self.images)
        return sha256_bytes(repr((arr.shape, arr.dtype.str)).encode() + memoryview(arr).cast("B"))


class _SourceBackend(_Backend):
    """A `mirai_cli.data` ImageSource (built-in data sets); labels are ignored."""

    kind = "dataset"

    def __init__(self, source: Any, spec: str) -> None:
        self.source, self.origin = source, spec
        if len(source) == 0:
            raise MiraiError(f"{spec}: holds no images")
        first = source.read(0)[0]
        size = (int(first.shape[0]), int(first.shape[1]))
        # Built-in sets hold one size; checking every image would decode the whole set twice.
        self.sizes, self.examples = Counter({size: len(source)}), {size: f"{spec}[0]"}

    def __len__(self) -> int:
        return len(self.source)

    def read(self, i: int) -> np.ndarray:
        return to_rgb_uint8(self.source.read(i)[0])

    def where(self, i: int) -> str:
        return self.source.path_of(i) if hasattr(self.source, "path_of") else f"{self.origin}[{i}]"

    def content_id(self, memo: HashMemo) -> str:
        describe = self.source.describe() if hasattr(self.source, "describe") else self.origin
        return sha256_bytes(f"{self.origin}\0{describe}\0{len(self)}".encode())


class ImageSet:
    """A checked, indexable set of RGB uint8 images of one size (after the optional resize)."""

    def __init__(self, backend: _Backend, resize: int | None = None,
                 indices: np.ndarray | None = None) -> None:
        if resize is not None and resize < 8:
            raise MiraiError(f"--resize {resize} is too small; give the side in pixels (e.g. 256)")
        self._backend, self.resize, self._indices = backend, resize, indices
        if resize is None and len(backend.sizes) > 1:
            parts = [f"{_fmt(s)} ({n} images, e.g. {backend.examples[s]})" for s, n in backend.sizes.most_common(3)]
            raise MiraiError(f"mixed image sizes in {backend.origin}: {'; '.join(parts)}; {RESIZE_POLICY}")
        self.size: Size = (resize, resize) if resize is not None else next(iter(backend.sizes))

    # -- what it is
    @property
    def kind(self) -> str:
        return self._backend.kind

    @property
    def origin(self) -> str:
        return self._backend.origin

    def __len__(self) -> int:
        return len(self._indices) if self._indices is not None else len(self._backend)

    def describe(self) -> str:
        extra = f", resized to {self.resize}" if self.resize else ""
        part = f" (subset of {len(self._backend)})" if self._indices is not None else ""
        return f"{len(self)} images{part} of {_fmt(self.size)}{extra} from {self.kind} {self.origin}"

    def content_id(self, memo: HashMemo | None = None) -> str:
        """Hash of the pixels' source and of what is done to them (resize, subset)."""
        base = self._backend.content_id(memo or HashMemo(None))
        sub = sha256_bytes(self._indices.astype(np.int64).tobytes())[:16] if self._indices is not None else "all"
        return sha256_bytes(f"{base}|resize={self.resize}|subset={sub}".encode())

    # -- pixels
    def _source_index(self, i: int) -> int:
        return int(self._indices[i]) if self._indices is not None else i

    def where(self, i: int) -> str:
        return self._backend.where(self._source_index(i))

    def read(self, i: int) -> np.ndarray:
        img = self._backend.read(self._source_index(i))
        if self.resize is not None:
            img = center_crop_arr(img, self.resize)
        return img

    def subset(self, limit: int, seed: int = 0) -> ImageSet:
        """`limit` images drawn at random (fixed seed, sorted order); the whole set when it is smaller."""
        if limit >= len(self):
            return self
        picked = np.sort(np.random.default_rng(seed).choice(len(self), size=limit, replace=False))
        base = self._indices[picked] if self._indices is not None else picked
        return ImageSet(self._backend, self.resize, base)

    def torch_dataset(self) -> TorchImages:
        return TorchImages(self)


class TorchImages(torch.utils.data.Dataset):
    """uint8 3xHxW tensors as torch-fidelity's extractors take them. A file that fails to decode yields a blank
    image and its error text, so the loop can name it even when the failure happened in a worker process."""

    def __init__(self, images: ImageSet) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, str]:
        try:
            arr = self.images.read(i)
            if arr.shape[:2] != self.images.size:
                raise ValueError(f"size {_fmt(arr.shape[:2])} differs from the set's {_fmt(self.images.size)}")
            return torch.from_numpy(np.array(arr, dtype=np.uint8)).permute(2, 0, 1).contiguous(), i, ""
        except Exception as e:  # noqa: BLE001 - reported by the caller with the file's name
            h, w = self.images.size
            return torch.zeros(3, h, w, dtype=torch.uint8), i, f"{type(e).__name__}: {e}"


def open_images(spec: str | Path | np.ndarray, *, resize: int | None = None, what: str = "samples") -> ImageSet:
    """A folder (searched recursively; for a `mirai sample` folder, its images/), an .npz with `arr_0` (or
    `images`), or a uint8 array (N,H,W,3)."""
    if isinstance(spec, np.ndarray):
        return ImageSet(_ArrayBackend(spec, f"<{what} array>"), resize)
    path = Path(os.path.expanduser(str(spec)))
    if path.is_dir() and (path / SAMPLE_MANIFEST).is_file() and (path / SAMPLE_IMAGES).is_dir():
        path = path / SAMPLE_IMAGES  # a `mirai sample` folder: its PNGs, not grid.png beside them
    if path.is_dir():
        return ImageSet(_FolderBackend(path.resolve()), resize)
    if path.is_file() and path.suffix.lower() == ".npz":
        keys = npz_keys(path)
        key = next((k for k in ("arr_0", "images") if k in keys), None)
        if key is None:
            raise MiraiError(f"{path} holds no images: expected an array 'arr_0' (N,H,W,3) uint8 "
                             f"(it holds: {', '.join(keys) or 'nothing'})")
        return ImageSet(_ArrayBackend(load_npz_array(path, key), str(path.resolve()), path.resolve()), resize)
    if path.exists():
        raise MiraiError(f"{what} {path} is neither a folder of images nor an .npz file")
    raise MiraiError(f"{what} not found: {path}")


def images_from_source(source: Any, spec: str, resize: int | None = None) -> ImageSet:
    return ImageSet(_SourceBackend(source, spec), resize)


def iterate_batches(images: ImageSet, batch_size: int, num_workers: int = 0, pin_memory: bool = False,
                    on_batch: Callable[[int], None] | None = None) -> Iterator[torch.Tensor]:
    """Yield uint8 batches [B,3,H,W]; a file that fails to decode stops with its path."""
    loader = torch.utils.data.DataLoader(images.torch_dataset(), batch_size=batch_size, shuffle=False,
                                         num_workers=num_workers, pin_memory=pin_memory, drop_last=False)
    for batch, idx, errors in loader:
        for i, err in zip(idx.tolist(), errors):
            if err:
                raise MiraiError(f"cannot decode image {images.where(i)}: {err}; remove or replace the file")
        yield batch
        if on_batch is not None:
            on_batch(batch.shape[0])
