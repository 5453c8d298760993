"""A Result's JSON written piece by piece: the same text as ``Result.to_json(indent=None)``,
with the per-cell provenance (``provenance["cells"]``, one entry per cell) encoded
``JSON_CHUNK_CELLS`` cells at a time. A million-cell result's JSON is a few hundred MB;
written this way it is never held as one string (nor as its encoded bytes) beside the
Result."""

from __future__ import annotations

import secrets
from itertools import islice
from typing import Any, Protocol

from crystallize_dist import constants as C
from crystallize_dist.canonical import json_text, paused_gc


class Writer(Protocol):
    """Where the text goes: a text stream, or anything with its ``write``."""

    def write(self, text: str, /) -> Any: ...


def write_json(result: Any, out: Writer, chunk: int = C.JSON_CHUNK_CELLS) -> None:
    """Write ``result.to_json(indent=None)``'s text to ``out`` (see the module docstring)."""
    data = result._dict()
    provenance = data.get("provenance")
    cells = provenance.get("cells") if isinstance(provenance, dict) else None
    if not isinstance(cells, dict) or len(cells) <= chunk:
        out.write(result.to_json(indent=None))
        return
    marker = f"\0cells {secrets.token_hex(8)}\0"  # a string no result holds
    data["provenance"] = {**provenance, "cells": marker}
    with paused_gc():
        text = json_text(data, ensure_ascii=False)
        head, _, tail = text.partition(json_text(marker, ensure_ascii=False))
        out.write(head + "{")
        items = iter(cells.items())
        sep = ""
        while batch := dict(islice(items, chunk)):
            # summaries are plain trees the aggregator made: no cycle to look for (-15 %)
            text = json_text(batch, ensure_ascii=False, check_circular=False)
            out.write(sep + text[1:-1])
            sep = ", "
        out.write("}" + tail)
