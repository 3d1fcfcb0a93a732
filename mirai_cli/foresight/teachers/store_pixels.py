"""The exact crops behind a token store's entries, as pixels: what Mirai-I teachers see. A batch decodes
its images in a few threads (PIL releases the GIL) and cuts only the crop each entry needs."""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from mirai_cli.errors import MiraiError
from mirai_cli.foresight.teachers.pixels import uint8_to_unit


class StorePixels:
    """The exact crops behind a token store's entries, as pixels in [0, 1]. Opens the recorded source once."""

    def __init__(self, store: Any, workers: int | None = None) -> None:
        from mirai_cli.data.crops import TENCROP_RANGE, make_crop, store_crops
        from mirai_cli.data.sources import open_source

        self.store = store
        m = store.manifest
        self._store_crops, self._make_crop = store_crops, make_crop
        self.image_size, self.crop_mode = int(m["image_size"]), str(m["crop_mode"])
        self.crop_ratio = float(m.get("crop_ratio", TENCROP_RANGE))
        self.workers = max(1, int(workers or min(8, os.cpu_count() or 1)))
        self._pool: ThreadPoolExecutor | None = None
        src = m["source"]
        self.source = open_source(src["spec"], src.get("split", "train"))
        if len(self.source) < int(src.get("count", 0)):
            raise MiraiError(f"data source {src['spec']} now holds {len(self.source)} images but the token store "
                             f"{store.path} was made from {src['count']}: the source changed; tokenize it again")

    def _image(self, i: int) -> np.ndarray:
        """Source image of store entry i (checks the label still matches)."""
        img, label = self.source.read(int(self.store.source_index[i]))
        if int(label) != int(self.store.labels[i]):
            raise MiraiError(f"entry {i} of token store {self.store.path} has label {int(self.store.labels[i])} "
                             f"but its source image now has {label}: the source changed; tokenize it again")
        return img

    def entry_crops(self, i: int) -> np.ndarray:
        """uint8 [crops, S, S, 3] of store entry i, every crop (what the cache builder encodes)."""
        return self._store_crops(self._image(i), self.store.manifest)  # the recorded crop ratio too

    def entry_crop(self, i: int, crop: int) -> np.ndarray:
        """uint8 [S, S, 3]: crop `crop` of store entry i alone."""
        return self._make_crop(self._image(i), self.image_size, self.crop_mode, int(crop), self.crop_ratio)

    def get_uint8(self, indices: Iterable[int], crop_ids: Iterable[int]) -> torch.Tensor:
        """uint8 [B, S, S, 3] of entries (indices[j], crop_ids[j]): the online Mirai-I teacher's host input,
        decoded in `workers` threads."""
        pairs = [(int(i), int(c)) for i, c in zip(indices, crop_ids)]
        if self.workers > 1 and len(pairs) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="mirai-teacher-pixels")
            crops = list(self._pool.map(lambda p: self.entry_crop(*p), pairs))
        else:
            crops = [self.entry_crop(i, c) for i, c in pairs]
        return torch.from_numpy(np.stack(crops))

    def get(self, indices: Iterable[int], crop_ids: Iterable[int]) -> torch.Tensor:
        """Pixels [B, 3, S, S] in [0, 1] of entries (indices[j], crop_ids[j])."""
        return uint8_to_unit(self.get_uint8(indices, crop_ids))
