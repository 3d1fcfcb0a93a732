"""Append-only JSONL metrics, one line per logged step; a resumed run drops lines past its checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mirai_cli.files.atomic import write_text


class MetricsLog:
    """`sink`: anything with write(record), e.g. the TensorBoard sink (train.tensorboard), gets every record too."""

    def __init__(self, path: Path, enabled: bool = True, sink: Any = None):
        self.path = path
        self.enabled = enabled
        self.sink = sink

    def truncate_after(self, step: int) -> None:
        """Keep lines with step <= `step` (the resumed run writes the rest again, identically)."""
        if not (self.enabled and self.path.is_file()):
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a crash
        write_text(self.path, "".join(f"{line}\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(clean) + "\n")
        if self.sink is not None:
            self.sink.write(clean)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
