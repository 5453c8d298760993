"""Text from a run store, made safe to print: whoever can write to Redis chooses run ids,
experiment, condition, metric and worker names and error messages, and must not be able to
send a terminal escape sequence or hide text (control and format characters, bidi
overrides) to the person reading them. Those characters are shown escaped (``\\x1b``)."""

from __future__ import annotations

import unicodedata

_UNSAFE = frozenset({"Cc", "Cf", "Cs", "Co"})


def plain(text: object) -> str:
    """``text`` as a string without control or format characters (each one escaped)."""
    value = str(text)
    if value.isprintable():
        return value
    return "".join(ascii(ch)[1:-1] if unicodedata.category(ch) in _UNSAFE else ch for ch in value)
