"""Text from a run store, made safe to print: whoever can write to Redis chooses run ids,
experiment, condition, metric and worker names and error messages, and must not be able to
send a terminal escape sequence or hide text (control and format characters, bidi
overrides) to the person reading them. Those characters are shown escaped (``\\x1b``)."""

from __future__ import annotations

import re
import unicodedata
from typing import TextIO

_UNSAFE = frozenset({"Cc", "Cf", "Cs", "Co"})


def plain(text: object) -> str:
    """``text`` as a string without control or format characters (each one escaped)."""
    value = str(text)
    if value.isprintable():
        return value
    return "".join(ascii(ch)[1:-1] if unicodedata.category(ch) in _UNSAFE else ch for ch in value)


_OUTSIDE_ASCII = re.compile(r"[^\x20-\x7e\n]")


def _json_escape(match: re.Match[str]) -> str:
    ch = match.group()
    if unicodedata.category(ch) not in _UNSAFE:
        return ch
    code = ord(ch)
    if code > 0xFFFF:  # JSON spells it as a surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def json_plain(text: str) -> str:
    """JSON ``text`` with its control, format, surrogate and private-use characters written
    as ``\\uXXXX`` escapes: the same JSON value, safe on a terminal. Such characters can
    only stand inside strings of JSON text, where an escape means the same character."""
    if text.isascii() and "\x7f" not in text:  # isascii is a flag check, not a scan
        return text
    return _OUTSIDE_ASCII.sub(_json_escape, text)


class PlainJsonWriter:
    """A text stream that writes JSON pieces through ``json_plain``."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, text: str) -> int:
        return self.out.write(json_plain(text))
