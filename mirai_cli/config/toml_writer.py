"""Write a resolved preset as TOML (the subset our presets use: tables of scalars and lists)."""

from __future__ import annotations

import json
import math
from typing import Any

from mirai_cli.config.schema import MiraiConfig


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are valid TOML basic-string escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dumps_toml(values: dict[str, Any]) -> str:
    """Top-level scalars first, then one [table] per dict. None values are left out (TOML has no null),
    so they load back as the field's default, which is None for every optional field."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_scalar(value)}")
    for name, table in tables:
        lines.append("")
        lines.append(f"[{name}]")
        for key, value in table.items():
            if value is None:
                continue
            if isinstance(value, dict):
                raise TypeError(f"nested table {name}.{key} is not supported")
            lines.append(f"{key} = {_scalar(value)}")
    return "\n".join(lines) + "\n"


def config_to_dict(config: MiraiConfig) -> dict[str, Any]:
    return config.model_dump(mode="json", by_alias=True)


def resolved_toml(config: MiraiConfig) -> str:
    """The fully resolved preset; `load_config([that file])` gives back an identical config."""
    header = "# Resolved mirai preset: every field, after extends, layering and --set.\n"
    return header + dumps_toml(config_to_dict(config))
