"""The reference side of an evaluation: images, stored FID statistics, or both.

Accepted: a folder of images; an .npz of images (`arr_0`); an ADM reference batch such as
`VIRTUAL_imagenet256_labeled.npz` (`arr_0` plus Inception `mu`/`sigma`, used for FID as the ADM evaluator
does); a built-in data set name (`fashion-mnist`, `fashion-mnist:test`), read through `mirai_cli.data`; or a
statistics file written by `mirai eval stats`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mirai_cli.errors import MiraiError
from mirai_cli.evaluation.images import ImageSet, Size, _ArrayBackend, images_from_source, open_images
from mirai_cli.evaluation.npzfile import load_npz_array, npz_keys
from mirai_cli.evaluation.statsfile import FidStats, is_stats_file, read_stats_file
from mirai_cli.files.hashing import HashMemo

INCEPTION = "inception-v3-compat"


@dataclass
class Reference:
    spec: str
    kind: str  # folder | npz | adm | dataset | stats | images
    images: ImageSet | None = None
    stats: FidStats | None = None  # stored FID statistics of the whole reference
    stats_extractor: str | None = None  # extractor the stored statistics were made with
    stats_weights: str | None = None  # sha256 of those weights; None = not recorded (ADM batches)
    stats_layer: str | None = None
    features: dict[str, np.ndarray] = field(default_factory=dict)  # stored features (stats file --features)
    meta: dict[str, Any] = field(default_factory=dict)
    count: int = 0
    image_size: Size | None = None
    file: Path | None = None

    def content_id(self, memo: HashMemo) -> str:
        if self.file is not None and self.images is None:
            return memo.sha256(self.file)
        assert self.images is not None
        return self.images.content_id(memo)

    def describe(self) -> str:
        if self.images is not None:
            what = self.images.describe()
        else:
            size = f"{self.image_size[1]}x{self.image_size[0]}" if self.image_size else "unknown size"
            what = f"statistics of {self.count} images of {size}"
        stored = " with stored mu/sigma" if self.stats is not None and self.images is not None else ""
        return f"{self.kind} reference: {what}{stored}"


def _builtin_names() -> set[str]:
    from mirai_cli.data.builtin import BUILTIN

    return set(BUILTIN)


def open_reference(spec: str | Path | np.ndarray | ImageSet, *, resize: int | None = None,
                   limit: int | None = None, seed: int = 0) -> Reference:
    """Resolve a reference spec. `limit` keeps a random subset of reference images (fixed seed)."""
    if isinstance(spec, ImageSet):
        ref = Reference(spec.origin, "images", images=spec)
    elif isinstance(spec, np.ndarray):
        ref = Reference("<array>", "images", images=ImageSet(_ArrayBackend(spec, "<reference array>"), resize))
    else:
        text = str(spec)
        path = Path(os.path.expanduser(text))
        name = text.split(":", 1)[0].lower()
        if not path.exists() and name in _builtin_names():
            from mirai_cli.data import open_source

            source = open_source(text, split="train")
            ref = Reference(text, "dataset", images=images_from_source(source, text, resize))
        elif path.is_file() and path.suffix.lower() == ".npz":
            ref = _open_npz(path.resolve(), resize)
        elif path.is_dir() or path.exists():
            ref = Reference(str(path.resolve()), "folder", images=open_images(path, resize=resize, what="reference"))
        else:
            builtin = ", ".join(sorted(_builtin_names()))
            raise MiraiError(f"reference not found: {text} (give a folder of images, an .npz, a statistics file "
                             f"from `mirai eval stats`, or a built-in data set: {builtin})")
    if ref.images is not None:
        if limit is not None:
            ref.images = ref.images.subset(limit, seed)
        ref.count, ref.image_size = len(ref.images), ref.images.size
    return ref


def _open_npz(path: Path, resize: int | None) -> Reference:
    keys = npz_keys(path)
    if is_stats_file(keys):
        sf = read_stats_file(path)
        meta = sf.meta
        size = tuple(meta["image_size"]) if meta.get("image_size") else None
        return Reference(str(path), "stats", stats=sf.stats, stats_extractor=meta.get("extractor"),
                         stats_weights=meta.get("weights_sha256"), stats_layer=meta.get("layer"),
                         features=sf.features, meta=meta, count=int(meta.get("count", 0)),
                         image_size=size, file=path)  # type: ignore[arg-type]
    if "mu" in keys and "sigma" in keys:
        # ADM reference batch: Inception pool3 statistics (TF graph, which inception-v3-compat reproduces).
        stats = FidStats(load_npz_array(path, "mu", mmap=False), load_npz_array(path, "sigma", mmap=False))
        images = open_images(path, resize=resize, what="reference") if "arr_0" in keys else None
        ref = Reference(str(path), "adm", images=images, stats=stats, stats_extractor=INCEPTION, stats_layer="2048",
                        file=path)
        if images is None:
            ref.count = 0  # unknown: the batch holds statistics only
        return ref
    return Reference(str(path), "npz", images=open_images(path, resize=resize, what="reference"), file=path)
