"""Which (image, crop) pairs make up each optimizer step, as a pure function of (seed, step).

The data position is therefore just the step: a resumed run draws exactly the batches an uninterrupted one
would, and every process count sees the same global batch (rank r takes rows r, r + world, ... of it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mirai_cli.errors import MiraiError


@dataclass(frozen=True)
class BatchPlan:
    num_images: int
    num_crops: int
    global_batch: int
    world_size: int = 1
    rank: int = 0
    micro_batch: int = 0  # per-process sequences per forward; 0 = the whole local batch at once
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_images < 1:
            raise MiraiError("the token store is empty: run `mirai tokenize encode` first")
        if self.global_batch % self.world_size:
            raise MiraiError(
                f"train.global_batch_size = {self.global_batch} is not divisible by {self.world_size} processes"
            )
        if self.micro_batch and self.local_batch % self.micro_batch:
            raise MiraiError(
                f"train.micro_batch_size = {self.micro_batch} does not divide the per-process batch {self.local_batch} "
                f"(global {self.global_batch} / {self.world_size} processes)"
            )

    @property
    def local_batch(self) -> int:
        return self.global_batch // self.world_size

    @property
    def accumulation(self) -> int:
        return self.local_batch // self.micro_batch if self.micro_batch else 1

    @property
    def steps_per_epoch(self) -> float:
        return self.num_images / self.global_batch

    def epoch_permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch, 0]).permutation(self.num_images)

    def epoch_crops(self, epoch: int) -> np.ndarray:
        # One random crop per image per epoch (LlamaGen draws one of the ten crops per sample).
        return np.random.default_rng([self.seed, epoch, 1]).integers(0, self.num_crops, self.num_images)

    def global_batch_at(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(image indices, crop ids) of the whole global batch of optimizer step `step` (0-indexed)."""
        start = step * self.global_batch
        positions = np.arange(start, start + self.global_batch)
        epochs = positions // self.num_images
        offsets = positions % self.num_images
        images = np.empty(self.global_batch, dtype=np.int64)
        crops = np.empty(self.global_batch, dtype=np.int64)
        for epoch in np.unique(epochs):
            mask = epochs == epoch
            perm = self.epoch_permutation(int(epoch))
            images[mask] = perm[offsets[mask]]
            crops[mask] = self.epoch_crops(int(epoch))[images[mask]]
        return images, crops

    def local_micro_batches(self, step: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """This process's share of step `step`, split into micro-batches."""
        images, crops = self.global_batch_at(step)
        images, crops = images[self.rank :: self.world_size], crops[self.rank :: self.world_size]
        size = self.micro_batch or self.local_batch
        return [(images[i : i + size], crops[i : i + size]) for i in range(0, self.local_batch, size)]


def duration_to_steps(duration: int | str, steps_per_epoch: float) -> int:
    """A preset duration (int steps, or 'Nep' epochs) in optimizer steps."""
    if isinstance(duration, int):
        return duration
    epochs = float(duration[:-2])
    return int(math.ceil(epochs * steps_per_epoch))
