"""Cell records written by workers: records of failures outside experiment code, and the
checks that every record can be stored (a cell is never lost to its record)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from crystallize_dist.canonical import dumps
from crystallize_dist.distributed.store.compact import RecordTemplate
from crystallize_dist.distributed.store.records import Encoded, encode
from crystallize_dist.engine.plan import Cell
from crystallize_dist.engine.records import STATUS_ERROR

#: a cell this quick may run while its start is on its way (see CellRunner.run); a slower
#: one waits for it, so a cancel stops it before it runs
QUICK_CELL_SECONDS = 0.05


def quick(record: Mapping[str, Any]) -> bool:
    """Whether the cell of ``record`` ran in under QUICK_CELL_SECONDS."""
    duration = (record.get("timing") or {}).get("duration")
    return isinstance(duration, (int, float)) and duration < QUICK_CELL_SECONDS


def error_record(cell: Cell, error_type: str, message: str, **extra: Any) -> dict[str, Any]:
    """A failed-cell record for errors raised outside experiment code."""
    return {
        "condition": cell.condition,
        "replicate": cell.replicate,
        "seed": cell.seed,
        "status": STATUS_ERROR,
        "metrics": {},
        "error": {"type": error_type, "message": message, "traceback": ""},
        "steps": [],
        "seeded": [],
        "artifacts": [],
        "timing": {"started": time.time(), "duration": 0.0},
        **extra,
    }


def storable(
    record: dict[str, Any], cell: Cell, max_bytes: int, template: RecordTemplate | None = None
) -> Encoded:
    """The record as stored text (compact with the run's ``template``), or - when it cannot
    be written or is over ``max_bytes`` - an error record that says why."""
    worker = record.get("worker", {})
    try:
        encoded = encode(record, template)
        encoded.text.encode()  # a lone surrogate in a string cannot be stored as UTF-8
    except (ValueError, TypeError) as exc:
        return encode(
            error_record(
                cell,
                "RecordEncodingError",
                f"cell record cannot be written as JSON: {exc}",
                worker=worker,
            )
        )
    text = encoded.text
    if len(text) <= max_bytes:
        return encoded
    metrics = record.get("metrics", {}).items()
    big = max(metrics, key=lambda kv: len(dumps(kv[1])), default=("?", None))[0]
    return encode(
        error_record(
            cell,
            "RecordTooLargeError",
            f"cell record is {len(text) / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit "
            f"(largest metric: '{big}'); record summaries, write big data as artifacts",
            worker=worker,
        )
    )
