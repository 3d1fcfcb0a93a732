"""Presets in, one validated `MiraiConfig` out.

Order of layers, later wins: each `--preset` left to right (a preset's `extends` chain first, then the preset),
then each `--set section.key=value`. Every key remembers which layer set it, so an error names the file.
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from pydantic import BaseModel, ValidationError

from mirai_cli.config.registries import did_you_mean
from mirai_cli.config.schema import SECTIONS, MiraiConfig
from mirai_cli.errors import ConfigError
from mirai_cli.files.text import STDIN, read_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

PRESET_SUFFIX = ".toml"
MAX_EXTENDS_DEPTH = 16


def shipped_presets_dir() -> Path:
    """The presets that ship inside the package (a non-editable install has mirai_cli/presets/); in a source
    checkout or an editable install they are the repository's top-level presets/."""
    installed = Path(__file__).resolve().parents[1] / "presets"
    if installed.is_dir() and any(installed.glob(f"*{PRESET_SUFFIX}")):
        return installed
    return Path(__file__).resolve().parents[2] / "presets"


def shipped_preset_names() -> list[str]:
    return sorted(p.stem for p in shipped_presets_dir().glob(f"*{PRESET_SUFFIX}"))


# A preset named STDIN ("-") is read from standard input (`mirai presets show X --resolved | mirai presets validate -`).
_stdin_text: list[str] = []  # read once: several layers may name it


def find_preset(name_or_path: str) -> Path:
    """A shipped preset name (`mirai-e`), a path to a TOML file, or "-" for standard input."""
    if name_or_path == STDIN:
        return Path(STDIN)
    candidate = Path(name_or_path)
    if candidate.suffix == PRESET_SUFFIX or candidate.exists():
        if not candidate.is_file():
            raise ConfigError(f"preset file {name_or_path} does not exist")
        return candidate
    shipped = shipped_presets_dir() / f"{name_or_path}{PRESET_SUFFIX}"
    if shipped.is_file():
        return shipped
    raise ConfigError(f"no preset named '{name_or_path}'; {did_you_mean(name_or_path, shipped_preset_names())} "
                      "(or give a path to a .toml file)")


def preset_text(path: Path) -> str:
    """The text of a preset file or of standard input (read once; refused when empty)."""
    if str(path) != STDIN:
        return read_text(path, "preset")
    if not _stdin_text:
        _stdin_text.append(read_text(STDIN, "preset", allow_empty=False))
    return _stdin_text[0]


def read_toml(path: Path) -> dict[str, Any]:
    text = preset_text(path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


class Layer:
    """One source of settings: a file or the command line."""

    def __init__(self, origin: str, values: dict[str, Any]):
        self.origin = origin
        self.values = values


def preset_layers(name_or_path: str, _seen: Optional[list[str]] = None) -> list[Layer]:
    """The layers of one preset: its `extends` chain (base first), then the file itself."""
    seen = list(_seen or [])
    path = find_preset(name_or_path)
    key = str(path.resolve())
    if key in seen:
        chain = " -> ".join(Path(p).stem for p in seen + [key])
        raise ConfigError(f"{path}: 'extends' forms a cycle ({chain}); remove one of the links")
    if len(seen) >= MAX_EXTENDS_DEPTH:
        raise ConfigError(f"{path}: 'extends' chain deeper than {MAX_EXTENDS_DEPTH}")
    values = read_toml(path)
    parent = values.pop("extends", None)
    layers: list[Layer] = []
    if parent is not None:
        parents = parent if isinstance(parent, list) else [parent]
        for item in parents:
            if not isinstance(item, str):
                raise ConfigError(f"{path}: extends = {item!r}: must be a preset name or path (a string)")
            base = item
            # A relative path in `extends` is relative to the file that says it.
            if item.endswith(PRESET_SUFFIX) and not Path(item).is_absolute():
                base = str(path.parent / item)
            layers.extend(preset_layers(base, seen + [key]))
    values.setdefault("name", "stdin" if str(path) == STDIN else path.stem)
    layers.append(Layer("<stdin>" if str(path) == STDIN else str(path), values))
    return layers


def parse_override(text: str) -> tuple[list[str], Any]:
    """`section.key=value` -> (["section", "key"], typed value). Values parse as TOML (numbers, booleans,
    lists, quoted strings); anything that does not parse is taken as a plain string."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. --set train.lr=3e-4")
    dotted, raw = text.split("=", 1)
    path = [part.strip() for part in dotted.strip().split(".")]
    if not all(path):
        raise ConfigError(f"--set {text!r}: empty part in the key path {dotted!r}")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw
    return path, value


def override_layer(overrides: list[str]) -> Layer:
    values: dict[str, Any] = {}
    for text in overrides:
        path, value = parse_override(text)
        target = values
        for part in path[:-1]:
            nxt = target.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {text!r}: {part} is a value, not a section")
            target = nxt
        target[path[-1]] = value
    return Layer("--set", values)


def merge_layers(layers: list[Layer]) -> tuple[dict[str, Any], dict[str, str]]:
    """Deep-merge layers (later wins) and remember the origin of every dotted key."""
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}

    def merge(target: dict[str, Any], values: dict[str, Any], prefix: str, source: str) -> None:
        for key, value in values.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                merge(target[key], value, f"{dotted}.", source)
            else:
                target[key] = _copy(value)
                origin[dotted] = source
                if isinstance(value, dict):
                    for sub in _dotted_keys(value, f"{dotted}."):
                        origin[sub] = source

    for layer in layers:
        merge(merged, layer.values, "", layer.origin)
    return merged, origin


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _dotted_keys(values: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in values.items():
        keys.append(f"{prefix}{key}")
        if isinstance(value, dict):
            keys.extend(_dotted_keys(value, f"{prefix}{key}."))
    return keys


def _known_keys(model: type[BaseModel]) -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        keys.append(field.alias or name)
    return keys


def _unknown_key_message(loc: tuple[Any, ...]) -> str:
    *parents, key = [str(part) for part in loc]
    if not parents:
        known = _known_keys(MiraiConfig)
        where = "top level"
    elif parents[0] in SECTIONS and len(parents) == 1:
        known = _known_keys(SECTIONS[parents[0]])
        where = f"section [{parents[0]}]"
    else:
        known, where = [], ".".join(parents)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
    return f"unknown key in {where}; {hint}"


def _origin_of(dotted: str, origin: dict[str, str]) -> str:
    parts = dotted.split(".")
    while parts:
        found = origin.get(".".join(parts))
        if found:
            return found
        parts.pop()
    return "defaults"


def format_validation_error(error: ValidationError, merged: dict[str, Any], origin: dict[str, str]) -> str:
    """The first problem as one line: file, dotted key, value, rule."""
    first = error.errors()[0]
    loc = tuple(first["loc"])
    dotted = ".".join(str(part) for part in loc)
    if first["type"] == "extra_forbidden":
        rule = _unknown_key_message(loc)
    elif first["type"] == "literal_error" and isinstance(first.get("input"), str):
        choices = re.findall(r"'([^']*)'", str((first.get("ctx") or {}).get("expected", "")))
        rule = did_you_mean(first["input"], choices)
    else:
        rule = first["msg"].removeprefix("Value error, ")
    value = first.get("input")
    source = _origin_of(dotted, origin)
    shown = f" = {value!r}" if first["type"] != "extra_forbidden" and not isinstance(value, dict) else ""
    more = len(error.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{source}: {dotted}{shown}: {rule}{tail}"


def _cross_rule_origin(message: str, origin: dict[str, str], section: Optional[str], order: list[str]) -> str:
    """For a rule that spans keys, name the layer that set one of the keys the message mentions: the latest
    layer among them (the user's most recent change is the likely culprit)."""
    best: Optional[tuple[int, str]] = None
    for dotted, source in origin.items():
        if section and not dotted.startswith(f"{section}."):
            continue
        names = [dotted] + ([dotted.split(".", 1)[1]] if section and "." in dotted else [])
        mentioned = any(re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])", message) for name in names)
        if mentioned:
            rank = order.index(source) if source in order else -1
            if best is None or rank > best[0]:
                best = (rank, source)
    return best[1] if best else (order[-1] if order else "preset")


def load_config(presets: Optional[list[str]] = None, overrides: Optional[list[str]] = None,
                files: Sequence[Layer] = ()) -> MiraiConfig:
    """Layer presets (left to right), then `files` (tables read from other files, e.g. a study's variant), then
    `--set` overrides, and validate. Raises ConfigError with one line naming the layer at fault."""
    layers: list[Layer] = []
    for preset in presets or []:
        layers.extend(preset_layers(preset))
    layers.extend(files)
    layers.append(override_layer(overrides or []))
    merged, origin = merge_layers(layers)
    if len(presets or []) > 1:
        merged["name"] = "+".join(Path(p).stem for p in presets or [])
    try:
        return MiraiConfig.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"] or (len(first["loc"]) == 1 and first["loc"][0] in SECTIONS and first["type"] == "value_error"):
            rule = first["msg"].removeprefix("Value error, ")
            where = str(first["loc"][0]) if first["loc"] else None
            source = _cross_rule_origin(rule, origin, where, [layer.origin for layer in layers if layer.values])
            section = f"[{where}] " if where else ""
            raise ConfigError(f"{source}: {section}{rule}") from None
        raise ConfigError(format_validation_error(exc, merged, origin)) from None
