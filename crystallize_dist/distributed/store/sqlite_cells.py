"""The embedded store's record path, the SQLite twin of ``scripts.py``: writing a record
first-write-wins and starting a cell, each with its counters, and many records at once,
inside the caller's transaction (so a record and its count never disagree)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
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


def _cancelled(db: sqlite3.Connection, run_id: str) -> bool:
    row = db.execute(f"SELECT state FROM {C.TABLE_RUNS} WHERE run_id = ?", (run_id,)).fetchone()
    return bool(row and json.loads(row[0]).get("cancelled"))


def _note_skipped(db: sqlite3.Connection, run_id: str, keys: list[str]) -> None:
    """Note cells a start refused because the run is cancelled (``resume`` sends them)."""
    row = db.execute(f"SELECT state FROM {C.TABLE_RUNS} WHERE run_id = ?", (run_id,)).fetchone()
    data = json.loads(row[0]) if row else {}
    data["skipped"] = sorted({*data.get("skipped", ()), *keys})
    db.execute(f"UPDATE {C.TABLE_RUNS} SET state = ? WHERE run_id = ?", (json.dumps(data), run_id))


def start(db: sqlite3.Connection, run_id: str, key: str, now: float) -> CellStart:
    """Start cell ``key`` (see ``RunStore.advance``): a duplicate when it has a record, a
    skip when the run is cancelled, else its attempt counted."""
    if db.execute(
        f"SELECT 1 FROM {C.TABLE_RECORDS} WHERE run_id = ? AND cell = ?", (run_id, key)
    ).fetchone():
        db.execute(BUMP, (run_id, C.COUNTER_DUPLICATES, 1))
        _bump_cell(db, run_id, key, "duplicates")
        return CellStart(recorded=True)
    if _cancelled(db, run_id):
        _note_skipped(db, run_id, [key])
        return CellStart(cancelled=True)
    _bump_cell(db, run_id, key, "n")
    db.execute(BUMP, (run_id, C.COUNTER_ATTEMPTS, 1))
    db.execute(_SET_FIRST, (run_id, C.COUNTER_FIRST_AT, now))
    row = db.execute(
        f"SELECT n FROM {C.TABLE_ATTEMPTS} WHERE run_id = ? AND cell = ?", (run_id, key)
    ).fetchone()
    return CellStart(attempt=int(row[0]))


def _existing(db: sqlite3.Connection, sql: str, run_id: str, cells: list[str]) -> list[Any]:
    """Rows of ``sql`` (``... WHERE run_id = ? AND cell IN ({marks})``) for ``cells``, asked
    500 at a time."""
    rows: list[Any] = []
    for i in range(0, len(cells), 500):
        part = cells[i : i + 500]
        rows += db.execute(sql.format(marks=",".join("?" * len(part))), (run_id, *part)).fetchall()
    return rows


def put_many(
    db: sqlite3.Connection,
    run_id: str,
    records: Sequence[Mapping[str, Any] | Encoded],
    now: float,
    *,
    ran: bool,
) -> list[int]:
    """Many records in the caller's transaction, with few statements: the twin of
    ``bulk_scripts.PUT_MANY`` (one number per record, as it gives them). Records of cells that
    have none yet - the usual case - go in with one INSERT; otherwise each cell is looked
    up first."""
    rows = [_row(run_id, encode(r)) for r in records]
    keys = [row[1] for row in rows]
    cancelled = ran and _cancelled(db, run_id)
    before = dict(_existing(db, _ATTEMPTS_OF, run_id, keys)) if ran else {}

    def started(key: str) -> int:
        return int(before.get(key) or 0) + 1 if ran else 1

    written: list[tuple[Any, ...]] | None = None
    if not cancelled:
        db.execute("SAVEPOINT put_many")
        try:
            db.executemany(_INSERT, [row[:7] for row in rows])
            written = rows
        except sqlite3.IntegrityError:  # some cells have a record: one by one
            db.execute("ROLLBACK TO put_many")
        db.execute("RELEASE put_many")
    if written is not None:
        out = [started(key) for key in keys]
    else:
        recorded = {r[0] for r in _existing(db, _RECORDED, run_id, keys)}
        written, out = [], []
        for row in rows:
            if row[1] in recorded:
                out.append(0)
            elif cancelled:
                out.append(-1)
            else:
                recorded.add(row[1])
                written.append(row)
                out.append(started(row[1]))
        if written:
            db.executemany(_INSERT, [row[:7] for row in written])
    _count(db, run_id, written, now, ran)
    dups = [key for key, n in zip(keys, out, strict=True) if n == 0]
    if dups:
        db.execute(BUMP, (run_id, C.COUNTER_DUPLICATES, len(dups)))
        db.executemany(_DUPLICATE, [(run_id, key) for key in dups])
    skipped = [key for key, n in zip(keys, out, strict=True) if n < 0]
    if skipped:
        _note_skipped(db, run_id, skipped)
    return out


def _row(run_id: str, enc: Encoded) -> tuple[Any, ...]:
    """A records row (run_id, cell, condition, replicate, status, record, node), and when
    the cell started."""
    rec = enc.record
    cond, rep = rec["condition"], int(rec["replicate"])
    node = str((rec.get("worker") or {}).get("node") or "")
    started = (rec.get("timing") or {}).get("started")
    return (run_id, f"{cond}:{rep}", cond, rep, rec["status"], enc.text, node, started)


def _count(
    db: sqlite3.Connection, run_id: str, written: list[tuple[Any, ...]], now: float, ran: bool
) -> None:
    """The counters of ``written`` rows (and, for cells that ran, their starts)."""
    if not written:
        return
    counts: dict[str, int] = {}
    first = now
    for _, _, cond, _, status, _, node, started in written:
        for name in (status, f"{status}:{cond}", f"node:{node}" if node else ""):
            if name:
                counts[name] = counts.get(name, 0) + 1
        if ran and isinstance(started, (int, float)) and started < first:
            first = float(started)
    if ran:
        db.executemany(_START, [(run_id, row[1]) for row in written])
        counts[C.COUNTER_ATTEMPTS] = len(written)
    db.executemany(BUMP, [(run_id, name, n) for name, n in counts.items()])
    db.execute(_SET_FIRST, (run_id, C.COUNTER_FIRST_AT, first))
    db.execute(_SET, (run_id, C.COUNTER_LAST_AT, now))


_INSERT = (
    f"INSERT INTO {C.TABLE_RECORDS} (run_id, cell, condition, replicate, status, record, node) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_RECORDED = f"SELECT cell FROM {C.TABLE_RECORDS} WHERE run_id = ? AND cell IN ({{marks}})"
_ATTEMPTS_OF = f"SELECT cell, n FROM {C.TABLE_ATTEMPTS} WHERE run_id = ? AND cell IN ({{marks}})"
_START = (
    f"INSERT INTO {C.TABLE_ATTEMPTS} (run_id, cell, n) VALUES (?, ?, 1) "
    "ON CONFLICT (run_id, cell) DO UPDATE SET n = n + 1"
)
_DUPLICATE = (
    f"INSERT INTO {C.TABLE_ATTEMPTS} (run_id, cell, duplicates) VALUES (?, ?, 1) "
    "ON CONFLICT (run_id, cell) DO UPDATE SET duplicates = duplicates + 1"
)


def delete(db: sqlite3.Connection, run_id: str, keys: list[str]) -> int:
    """Remove records (see ``RunStore.delete_records``); returns how many there were."""
    deleted = 0
    for cell in keys:
        row = db.execute(
            f"SELECT status, condition, node FROM {C.TABLE_RECORDS} WHERE run_id = ? AND cell = ?",
            (run_id, cell),
        ).fetchone()
        if row is None:
            continue
        db.execute(f"DELETE FROM {C.TABLE_RECORDS} WHERE run_id = ? AND cell = ?", (run_id, cell))
        status, condition, node = row  # as counted when the record was written
        bumps = [(run_id, status, -1), (run_id, f"{status}:{condition}", -1)]
        if node:
            bumps.append((run_id, f"node:{node}", -1))
        db.executemany(BUMP, bumps)
        db.execute(
            f"UPDATE {C.TABLE_ATTEMPTS} SET n = 0 WHERE run_id = ? AND cell = ?", (run_id, cell)
        )
        deleted += 1
    return deleted


def node_number(db: sqlite3.Connection, run_id: str, node: str) -> int:
    """``node``'s number in the run, given the first time it is asked for."""
    row = db.execute(
        f"SELECT number FROM {C.TABLE_NODE_NUMBERS} WHERE run_id = ? AND node = ?", (run_id, node)
    ).fetchone()
    if row is not None:
        return int(row[0])
    top = db.execute(
        f"SELECT COALESCE(MAX(number), 0) FROM {C.TABLE_NODE_NUMBERS} WHERE run_id = ?", (run_id,)
    ).fetchone()
    number = int(top[0]) + 1
    db.execute(
        f"INSERT INTO {C.TABLE_NODE_NUMBERS} (run_id, node, number) VALUES (?, ?, ?)",
        (run_id, node, number),
    )
    return number
