"""The embedded store's record path, the SQLite twin of ``scripts.py``: writing a record
first-write-wins and starting a cell, each with its counters, inside the caller's
transaction (so a record and its count never disagree)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.distributed.store.base import CellStart
from crystallize_dist.distributed.store.records import Encoded, encode

BUMP = (
    f"INSERT INTO {C.TABLE_COUNTERS} (run_id, name, value) VALUES (?, ?, ?) "
    "ON CONFLICT (run_id, name) DO UPDATE SET value = value + excluded.value"
)
_SET = (
    f"INSERT INTO {C.TABLE_COUNTERS} (run_id, name, value) VALUES (?, ?, ?) "
    "ON CONFLICT (run_id, name) DO UPDATE SET value = excluded.value"
)
_SET_FIRST = (
    f"INSERT INTO {C.TABLE_COUNTERS} (run_id, name, value) VALUES (?, ?, ?) "
    "ON CONFLICT (run_id, name) DO NOTHING"
)


def _bump_cell(db: sqlite3.Connection, run_id: str, cell: str, column: str) -> None:
    db.execute(
        f"INSERT INTO {C.TABLE_ATTEMPTS} (run_id, cell, {column}) VALUES (?, ?, 1) "
        f"ON CONFLICT (run_id, cell) DO UPDATE SET {column} = {column} + 1",
        (run_id, cell),
    )


def put(
    db: sqlite3.Connection, run_id: str, record: Mapping[str, Any] | Encoded, now: float
) -> bool:
    """Write a record unless its cell has one (then count a duplicate); True when written."""
    enc = encode(record)
    cond, rep, status = (
        enc.record["condition"],
        int(enc.record["replicate"]),
        enc.record["status"],
    )
    node = str((enc.record.get("worker") or {}).get("node") or "")
    cell = f"{cond}:{rep}"
    cur = db.execute(
        f"INSERT OR IGNORE INTO {C.TABLE_RECORDS} "
        "(run_id, cell, condition, replicate, status, record, node) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (run_id, cell, cond, rep, status, enc.text, node),
    )
    if cur.rowcount == 1:
        bumps = [(run_id, status, 1), (run_id, f"{status}:{cond}", 1)]
        if node:
            bumps.append((run_id, f"node:{node}", 1))
        db.executemany(BUMP, bumps)
        db.execute(_SET_FIRST, (run_id, C.COUNTER_FIRST_AT, now))
        db.execute(_SET, (run_id, C.COUNTER_LAST_AT, now))
        return True
    db.execute(BUMP, (run_id, C.COUNTER_DUPLICATES, 1))
    _bump_cell(db, run_id, cell, "duplicates")
    return False


def exists(db: sqlite3.Connection, run_id: str) -> bool:
    """Whether the run still exists (a worker finishing a cell of a deleted run writes
    nothing)."""
    found = db.execute(f"SELECT 1 FROM {C.TABLE_RUNS} WHERE run_id = ?", (run_id,)).fetchone()
    return found is not None


def start(db: sqlite3.Connection, run_id: str, key: str, now: float) -> CellStart:
    """Start cell ``key`` (see ``RunStore.advance``): a duplicate when it has a record, a
    skip when the run is cancelled, else its attempt counted."""
    if db.execute(
        f"SELECT 1 FROM {C.TABLE_RECORDS} WHERE run_id = ? AND cell = ?", (run_id, key)
    ).fetchone():
        db.execute(BUMP, (run_id, C.COUNTER_DUPLICATES, 1))
        _bump_cell(db, run_id, key, "duplicates")
        return CellStart(recorded=True)
    state = db.execute(f"SELECT state FROM {C.TABLE_RUNS} WHERE run_id = ?", (run_id,)).fetchone()
    if state and (data := json.loads(state[0])).get("cancelled"):
        data["skipped"] = sorted({*data.get("skipped", ()), key})
        db.execute(
            f"UPDATE {C.TABLE_RUNS} SET state = ? WHERE run_id = ?", (json.dumps(data), run_id)
        )
        return CellStart(cancelled=True)
    _bump_cell(db, run_id, key, "n")
    db.execute(BUMP, (run_id, C.COUNTER_ATTEMPTS, 1))
    db.execute(_SET_FIRST, (run_id, C.COUNTER_FIRST_AT, now))
    row = db.execute(
        f"SELECT n FROM {C.TABLE_ATTEMPTS} WHERE run_id = ? AND cell = ?", (run_id, key)
    ).fetchone()
    return CellStart(attempt=int(row[0]))
