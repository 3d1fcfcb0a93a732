"""Optional TensorBoard logging (`train.tensorboard = true`, `pip install 'mirai-cli[tensorboard]'`): every term of
each metrics record the trainer writes to metrics.jsonl also goes to <run>/tensorboard as a scalar."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mirai_cli.errors import MiraiError

FOLDER = "tensorboard"


class TensorBoardSink:
    def __init__(self, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:  # torch ships the writer; it needs the tensorboard package
            raise MiraiError("train.tensorboard = true needs the tensorboard package: pip install "
                             "'mirai-cli[tensorboard]' (or pip install tensorboard), or set train.tensorboard = false") from e
        self.writer = SummaryWriter(str(log_dir))

    def write(self, record: dict[str, Any]) -> None:
        """One metrics record (with its "step"): each finite number becomes a scalar at that step."""
        step = int(record["step"])
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_sink(run_dir: str | Path, enabled: bool) -> TensorBoardSink | None:
    """The sink the trainer writes to when train.tensorboard is on (None when off); call it on the main rank."""
    return TensorBoardSink(Path(run_dir) / FOLDER) if enabled else None
