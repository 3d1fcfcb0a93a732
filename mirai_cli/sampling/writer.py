"""PNG writing off the main thread: the GPU samples the next batch while one thread encodes, writes and fsyncs
the last one. The queue is bounded (a slow disk slows sampling down instead of filling the memory), and a
failed write stops the job at the next batch with one line; the files already written are kept (atomic writes:
no half PNG), so running the job again finishes it."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Optional

import numpy as np

from mirai_cli.errors import MiraiError

Write = Callable[[np.ndarray, np.ndarray], None]  # (sample indices, uint8 images [n, H, W, 3])
WRITE_AHEAD = 2  # batches waiting for the writer; one more is being written


class ImageWriter:
    """with ImageWriter(write, out_dir) as w: w.put(indices, images) ... ; w.written counts the images on disk.
    `on_written(n)` is called from the writer thread after each batch is on disk."""

    def __init__(self, write: Write, out_dir: Path, on_written: Optional[Callable[[int], None]] = None,
                 depth: int = WRITE_AHEAD) -> None:
        self._write, self._out_dir, self._on_written = write, Path(out_dir), on_written
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: Optional[BaseException] = None
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="mirai-png-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # after a failure: drain, so that put() never blocks on a dead writer
            try:
                self._write(*item)
                self.written += len(item[0])
                if self._on_written is not None:
                    self._on_written(len(item[0]))
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which reports it
                self._error = exc

    def put(self, indices: np.ndarray, images: np.ndarray) -> None:
        """Queue one batch (waits while the queue is full); raises the writer's failure if there was one."""
        while True:
            self.check()
            try:
                self._queue.put((indices, images), timeout=0.2)
                return
            except queue.Full:
                continue

    def check(self) -> None:
        if self._error is not None:
            raise self._failure()

    def _failure(self) -> MiraiError:
        exc = self._error
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
        where = getattr(exc, "filename", None) or self._out_dir
        return MiraiError(f"cannot write sample images ({where}): {str(reason)[:200]}; the {self.written} images "
                          "written before are kept: fix the folder or free space, then run the same job again to "
                          "finish it")

    def close(self) -> None:
        """Wait until every queued batch is on disk; raise the writer's failure if there was one."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self.check()

    def __enter__(self) -> ImageWriter:
        return self

    def __exit__(self, kind: Optional[type], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        if kind is None:
            self.close()
            return
        # The main thread failed: the batches it queued are finished images, write them, keep its own error.
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
