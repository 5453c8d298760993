"""The long format as CSV (``result RUN --format rows``): one row per recorded value.
Text from the store goes through ``text.plain``."""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crystallize_dist.canonical import canonical_json
from crystallize_dist.cli.text import plain
from crystallize_dist.model.cell_values import ROW_COLUMNS


def _cell(value: Any) -> Any:
    """A value as one CSV field: numbers and text as they are, the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return plain(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return plain(canonical_json(value))


def rows_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The long format as CSV (``ROW_COLUMNS``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ROW_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row[col]) for col in ROW_COLUMNS])
    return out.getvalue()


def write_text(text: str, output: str | None) -> None:
    """``text`` to ``output``, or to stdout."""
    if output:
        Path(output).write_text(text)
    else:
        sys.stdout.write(text)
