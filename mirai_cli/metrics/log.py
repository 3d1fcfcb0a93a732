"""Append-only JSONL metrics, one line per logged step; a resumed run drops lines past its checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mirai_cli.errors import MiraiError
from mirai_cli.files.atomic import write_text
from mirai_cli.files.text import read_log_lines
from mirai_cli.runtime.progress import warn


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
        kept = [line for line, record in read_records(self.path) if record.get("step", 0) <= step]
        write_text(self.path, "".join(f"{line}\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(clean) + "\n")
        if self.sink is not None:
            self.sink.write(clean)


def read_records(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The one reader of a JSONL log (metrics.jsonl, evals.jsonl): (line, record) per line, none if no file.
    A last line that does not parse is what a crash mid-write leaves: skipped with a warning. A bad line before
    the last is damage a rerun would not explain: one error naming the file and line."""
    if not path.is_file():
        return []
    lines, torn = read_log_lines(path, "metrics log")
    if torn:
        warn(f"skipped the last line (a run stopped while writing it?): {torn}")
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            problem = None if isinstance(record, dict) else f"a JSON {type(record).__name__}, not an object"
        except json.JSONDecodeError as exc:
            problem = f"not JSON ({exc.msg})"
        if problem is None:
            out.append((line, record))
        elif number == len(lines):
            warn(f"{path}:{number}: skipped the last line, {problem} (a run stopped while writing it?)")
        else:
            raise MiraiError(f"{path}:{number}: {problem}; each line must be one JSON object: remove or repair "
                             "that line")
    return out


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [record for _, record in read_records(path)]
