"""The exact crops behind a token store's entries, as pixels: what Mirai-I teachers see."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from mirai_cli.errors import MiraiError
from mirai_cli.foresight.teachers.pixels import uint8_to_unit


class StorePixels:
    """The exact crops behind a token store's entries, as pixels in [0, 1]. Opens the recorded source once."""

    def __init__(self, store: Any) -> None:
        from mirai_cli.data.crops import store_crops
        from mirai_cli.data.sources import open_source

        self.store = store
        m = store.manifest
        self._store_crops = store_crops
        self.image_size, self.crop_mode = int(m["image_size"]), str(m["crop_mode"])
        src = m["source"]
        self.source = open_source(src["spec"], src.get("split", "train"))
        if len(self.source) < int(src.get("count", 0)):
            raise MiraiError(f"data source {src['spec']} now holds {len(self.source)} images but the token store "
                             f"{store.path} was made from {src['count']}: the source changed; tokenize it again")

    def entry_crops(self, i: int) -> np.ndarray:
        """uint8 [crops, S, S, 3] of store entry i (checks the label still matches)."""
        img, label = self.source.read(int(self.store.source_index[i]))
        if int(label) != int(self.store.labels[i]):
            raise MiraiError(f"entry {i} of token store {self.store.path} has label {int(self.store.labels[i])} "
                             f"but its source image now has {label}: the source changed; tokenize it again")
        return self._store_crops(img, self.store.manifest)  # the recorded crop ratio too

    def get_uint8(self, indices: Iterable[int], crop_ids: Iterable[int]) -> torch.Tensor:
        """uint8 [B, S, S, 3] of entries (indices[j], crop_ids[j]): the online Mirai-I teacher's host input."""
        return torch.from_numpy(np.stack([self.entry_crops(int(i))[int(c)] for i, c in zip(indices, crop_ids)]))

    def get(self, indices: Iterable[int], crop_ids: Iterable[int]) -> torch.Tensor:
        """Pixels [B, 3, S, S] in [0, 1] of entries (indices[j], crop_ids[j])."""
        return uint8_to_unit(self.get_uint8(indices, crop_ids))
