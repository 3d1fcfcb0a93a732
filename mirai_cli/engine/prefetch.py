"""Data off the critical path: the next step's micro-batches (codes, labels, cached teacher features) are read
from the memory-mapped store in a background thread, pinned when the device is a GPU, and copied with
`non_blocking` while the current step runs. Which rows a step reads stays a pure function of (seed, step)."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from mirai_cli.data.store import TokenStore
from mirai_cli.engine.batches import BatchPlan

HostTeacher = Callable[[np.ndarray, np.ndarray], torch.Tensor]


@dataclass
class DeviceBatch:
    """One micro-batch: store rows `images` with crops `crops`, their codes and labels, and the teacher
    targets when they come from a cache (else None: the teacher runs in the step)."""

    images: np.ndarray
    crops: np.ndarray
    codes: torch.Tensor
    labels: torch.Tensor
    teacher: Optional[torch.Tensor] = None


class BatchReader:
    """Reads a step's micro-batches into (pinned) host tensors and moves them to the device."""

    def __init__(self, store: TokenStore, plan: BatchPlan, device: torch.device,
                 host_teacher: Optional[HostTeacher] = None) -> None:
        self.store, self.plan, self.device, self.host_teacher = store, plan, device, host_teacher
        self.pin = device.type == "cuda"

    def _host(self, array: torch.Tensor) -> torch.Tensor:
        return array.pin_memory() if self.pin else array

    def read(self, step: int) -> list[DeviceBatch]:
        """Host tensors of this process's share of `step` (runs in the background thread)."""
        out = []
        for images, crops in self.plan.local_micro_batches(step):
            codes = torch.from_numpy(self.store.codes.get(images, crops).astype(np.int64))
            labels = torch.from_numpy(self.store.labels[images].astype(np.int64))
            teacher = self.host_teacher(images, crops) if self.host_teacher is not None else None
            out.append(DeviceBatch(images, crops, self._host(codes), self._host(labels),
                                   None if teacher is None else self._host(teacher)))
        return out

    def to_device(self, batch: DeviceBatch) -> DeviceBatch:
        move = lambda t: t.to(self.device, non_blocking=True)  # noqa: E731
        teacher = None if batch.teacher is None else move(batch.teacher)  # the teacher casts (pixels stay uint8)
        return DeviceBatch(batch.images, batch.crops, move(batch.codes), move(batch.labels), teacher)


class Prefetcher:
    """`get(step)` returns step's device batches and starts reading step + 1 in the background."""

    def __init__(self, reader: BatchReader, end_step: int) -> None:
        self.reader, self.end_step = reader, end_step
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mirai-prefetch")
        self.pending: dict[int, Future] = {}

    def _start(self, step: int) -> None:
        if step < self.end_step and step not in self.pending:
            self.pending[step] = self.pool.submit(self.reader.read, step)

    def get(self, step: int) -> list[DeviceBatch]:
        self._start(step)
        host = self.pending.pop(step).result()
        self._start(step + 1)
        return [self.reader.to_device(b) for b in host]

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        for future in self.pending.values():
            future.cancel()
        self.pool.shutdown(wait=True)
