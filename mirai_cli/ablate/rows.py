"""Rows: one finished run of a study file's variant on one seed, one JSON line in a committed rows file
(docs/study_rows.jsonl), so that the sweep table and the paired analyses outlive the run folders.

A row: name (the variant), seed, tokenizer (the first 12 hex digits of the fit whose codes it trained on: rows of
different fits are never compared), baseline (the variant it is compared with), curve ({step: validation NLL}),
fd_curve (where samples were scored), steps, seconds (wall time of training and evaluation), command (how to
reproduce it), finished, source ("run"; older rows: "table", transcribed from the sweep table).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from mirai_cli.ablate.axes import Variant
from mirai_cli.errors import MiraiError
from mirai_cli.files.text import read_text

RowKey = tuple[str, str, int]  # (tokenizer fit, variant, seed)
SECONDS = ("train_s", "val_s", "sample_s", "eval_s")  # the timed parts of an evaluation record


def reproduce_command(study_path: Path | str, name: str, seed: int) -> str:
    return f"mirai ablate --study {study_path} --variants {name} --seeds {seed}"


def run_row(study_path: Path, variant: Variant, records: Sequence[dict[str, Any]], tokenizer: Optional[str]
            ) -> dict[str, Any]:
    """The row of a finished run from its evaluation records (a continued run's include the ones it copied)."""
    name = variant.group or variant.name
    row: dict[str, Any] = {
        "name": name, "seed": variant.seed, "tokenizer": (tokenizer or "unknown")[:12], "source": "run",
        "baseline": variant.compared_with or name,
        "curve": {str(r["step"]): r["values"]["val_nll"] for r in records if "val_nll" in r["values"]},
    }
    fd = {str(r["step"]): r["values"]["fid"] for r in records if "fid" in r["values"]}
    if fd:
        row["fd_curve"] = fd
    row.update(seconds=sum(r.get(key, 0.0) for r in records for key in SECONDS), steps=records[-1]["step"],
               command=reproduce_command(study_path, name, variant.seed), finished=time.strftime("%Y-%m-%d %H:%M"))
    return row


def read_rows(path: Path) -> dict[RowKey, dict[str, Any]]:
    """The rows of a rows file by (tokenizer fit, variant, seed), curves keyed by int steps; none if no file."""
    rows = {}
    for number, line in enumerate(read_text(path, "rows file").splitlines() if path.is_file() else [], 1):
        try:
            r = json.loads(line)
            key = (r["tokenizer"], r["name"], int(r["seed"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise MiraiError(f"{path}:{number}: not a row ({exc}); each line holds one JSON row") from None
        rows[key] = {**r, **{k: {int(s): v for s, v in r[k].items()} for k in ("curve", "fd_curve") if k in r}}
    return rows


def append_row(path: Path, row: dict[str, Any]) -> bool:
    """Append the row unless its (fit, variant, seed) is recorded already; True if appended. One write of one
    line: parallel variants appending at once do not interleave."""
    if (row["tokenizer"], row["name"], row["seed"]) in read_rows(path):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(row) + "\n")
    return True
