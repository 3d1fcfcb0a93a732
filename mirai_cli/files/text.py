"""The one decoder for text inputs (presets, metrics logs): UTF-8 only (a BOM is accepted), from a file or
standard input ("-"); a problem is one line naming the source and, for an encoding problem, the byte offset."""

from __future__ import annotations

import codecs
import sys
from pathlib import Path

from mirai_cli.errors import MiraiError

STDIN = "-"


def decode_text(data: bytes, source: str, what: str) -> str:
    """`data` as UTF-8 (a leading BOM dropped); anything else is refused with the offset of the first bad byte."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise MiraiError(f"{source}: the {what} is UTF-16/UTF-32 (byte-order mark at byte 0); only UTF-8 is read: "
                         "save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MiraiError(f"{source}: the {what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}: "
                         f"{exc.reason}); only UTF-8 is read: save it as UTF-8") from None


def _source(path: str | Path) -> str:
    return "<stdin>" if str(path) == STDIN else str(path)


def read_bytes(path: str | Path, what: str) -> bytes:
    try:
        if str(path) == STDIN:
            stream = getattr(sys.stdin, "buffer", None)  # a text-only stdin (some test runners) has no bytes
            return stream.read() if stream is not None else sys.stdin.read().encode("utf-8", "surrogateescape")
        return Path(path).read_bytes()
    except OSError as exc:
        raise MiraiError(f"{_source(path)}: cannot read the {what}: {exc.strerror}") from None


def read_text(path: str | Path, what: str, *, allow_empty: bool = True) -> str:
    """The text of `path` ("-": standard input). `what` names the kind of input in messages ("preset").
    `allow_empty=False` refuses an empty (or blank) input: an empty pipe is a failed command upstream, not data."""
    text = decode_text(read_bytes(path, what), _source(path), what)
    if not allow_empty and not text.strip():
        hint = " (did the command before the pipe fail?)" if str(path) == STDIN else ""
        raise MiraiError(f"{_source(path)}: the {what} is empty{hint}; give a non-empty {what}")
    return text


def read_log_lines(path: str | Path, what: str) -> tuple[list[str], str | None]:
    """The lines of an append-only log, and the problem with its last line if only that line is not UTF-8: a
    crash mid-write leaves a torn or garbled last line, which the caller skips with a warning. Bad bytes before
    the last line are refused like any other text input."""
    data = read_bytes(path, what)
    try:
        return decode_text(data, _source(path), what).splitlines(), None
    except MiraiError as exc:
        last_start = data.rstrip(b"\n").rfind(b"\n") + 1
        decode_text(data[:last_start], _source(path), what)  # raises if the damage starts before the last line
        return data[:last_start].decode("utf-8-sig").splitlines(), str(exc)
