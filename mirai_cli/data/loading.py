"""Image decoding ahead of the model: in DataLoader worker processes (`data.num_workers` > 0) or, with none,
in one background thread (PIL and numpy release the GIL). Used by `tokenize fit/encode` and the Mirai-I
teacher-feature cache."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def read_ahead(it: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yield `it`'s items while a thread computes the next `depth`; an error in the thread is raised here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in it:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - any error, even an interrupt, goes to the consumer
            q.put(e)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(timeout=0.05)


def decoded_batches(dataset: torch.utils.data.Dataset, batch_size: int, workers: int,
                    collate: Callable[[list], Any]) -> Iterator[Any]:
    """`dataset` in order, `batch_size` items per batch, decoded in `workers` processes (0: one thread)."""
    # Its own generator: a DataLoader draws a base seed, which must not move the caller's global RNG (a run
    # that builds its teacher cache would otherwise initialise its projectors differently from one that reuses it).
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate,
                                         prefetch_factor=2 if workers else None, generator=torch.Generator())
    return iter(loader) if workers else read_ahead(iter(loader))
