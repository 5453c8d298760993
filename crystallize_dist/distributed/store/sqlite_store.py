"""SQLiteStore: the embedded run store (``--local``): one file, no server.

Every process opens its own connection (WAL mode, so ``status`` can read while workers
write); first-write-wins is ``INSERT OR IGNORE`` and its counters change in the same
transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.core.canonical import dumps
from crystallize_dist.distributed.store.base import (
    CellStart,
    Encoded,
    RunStore,
    decode_json,
    decode_page,
    decode_record,
    encode,
)
from crystallize_dist.errors import RunNotFoundError, StoreError

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {C.TABLE_RUNS} (
    run_id TEXT PRIMARY KEY, created REAL NOT NULL, manifest TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT '{{}}');
CREATE TABLE IF NOT EXISTS {C.TABLE_RECORDS} (
    run_id TEXT NOT NULL, cell TEXT NOT NULL, condition TEXT NOT NULL,
    replicate INTEGER NOT NULL, status TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (run_id, cell));
CREATE TABLE IF NOT EXISTS {C.TABLE_COUNTERS} (
    run_id TEXT NOT NULL, name TEXT NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (run_id, name));
CREATE TABLE IF NOT EXISTS {C.TABLE_ATTEMPTS} (
    run_id TEXT NOT NULL, cell TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (run_id, cell));
CREATE TABLE IF NOT EXISTS {C.TABLE_WORKERS} (
    run_id TEXT NOT NULL, host TEXT NOT NULL, info TEXT NOT NULL,
    PRIMARY KEY (run_id, host));
CREATE TABLE IF NOT EXISTS {C.TABLE_BLOBS} (key TEXT PRIMARY KEY, data BLOB NOT NULL);
"""

_BUMP = (
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


class SQLiteStore(RunStore):
    """A run store in one SQLite file (``sqlite:///path/to/file``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).absolute()  # errors name it in full: --local runs live here
        self.url = f"sqlite:///{self.path}"
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the run store folder {self.path.parent}: {exc.strerror or exc}"
            ) from None
        try:
            self._db().executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open run store {self.path}: {exc}") from None

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            try:
                conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open run store {self.path}: {exc}") from None
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=60000")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"run store {self.path}: {exc}") from None
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"run store {self.path}: {exc}") from None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- runs ----------------------------------------------------------------------------------
    def create_run(self, run_id: str, manifest: Mapping[str, Any]) -> None:
        with self._tx() as db:
            try:
                db.execute(
                    f"INSERT INTO {C.TABLE_RUNS} (run_id, created, manifest, state) "
                    "VALUES (?, ?, ?, ?)",
                    (
                        run_id,
                        float(manifest.get("created", time.time())),
                        dumps(manifest),
                        json.dumps({"created": time.time()}),
                    ),
                )
            except sqlite3.IntegrityError:
                raise StoreError(f"run '{run_id}' already exists") from None

    def manifest(self, run_id: str) -> dict[str, Any]:
        rows = self._read(f"SELECT manifest FROM {C.TABLE_RUNS} WHERE run_id = ?", (run_id,))
        if not rows:
            raise RunNotFoundError(self._missing(run_id))
        data: dict[str, Any] = decode_json(rows[0][0], f"manifest of run '{run_id}'")
        return data

    def exists(self, run_id: str) -> bool:
        return bool(self._read(f"SELECT 1 FROM {C.TABLE_RUNS} WHERE run_id = ?", (run_id,)))

    def run_ids(self, limit: int = 50) -> list[str]:
        rows = self._read(
            f"SELECT run_id FROM {C.TABLE_RUNS} ORDER BY created DESC LIMIT ?", (limit,)
        )
        return [r[0] for r in rows]

    def _missing(self, run_id: str) -> str:
        return (
            f"no run '{run_id}' in {self.path} (--local runs are kept under "
            "CRYSTALLIZE_DIST_HOME, by default ./.crystallize-dist of the folder you submit from)"
        )

    def _require(self, run_id: str) -> None:
        if not self.exists(run_id):
            raise RunNotFoundError(self._missing(run_id))

    # -- records -------------------------------------------------------------------------------
    def _put(
        self,
        db: sqlite3.Connection,
        run_id: str,
        record: Mapping[str, Any] | Encoded,
        now: float,
    ) -> bool:
        enc = encode(record)
        cond, rep, status = (
            enc.record["condition"],
            int(enc.record["replicate"]),
            enc.record["status"],
        )
        cell = f"{cond}:{rep}"
        cur = db.execute(
            f"INSERT OR IGNORE INTO {C.TABLE_RECORDS} "
            "(run_id, cell, condition, replicate, status, record) VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, cell, cond, rep, status, enc.text),
        )
        if cur.rowcount == 1:
            db.executemany(_BUMP, [(run_id, status, 1), (run_id, f"{status}:{cond}", 1)])
            db.execute(_SET_FIRST, (run_id, C.COUNTER_FIRST_AT, now))
            db.execute(_SET, (run_id, C.COUNTER_LAST_AT, now))
            return True
        db.execute(_BUMP, (run_id, C.COUNTER_DUPLICATES, 1))
        self._bump_cell(db, run_id, cell, "duplicates")
        return False

    @staticmethod
    def _bump_cell(db: sqlite3.Connection, run_id: str, cell: str, column: str) -> None:
        db.execute(
            f"INSERT INTO {C.TABLE_ATTEMPTS} (run_id, cell, {column}) VALUES (?, ?, 1) "
            f"ON CONFLICT (run_id, cell) DO UPDATE SET {column} = {column} + 1",
            (run_id, cell),
        )

    def _start(self, db: sqlite3.Connection, run_id: str, key: str, now: float) -> CellStart:
        if db.execute(
            f"SELECT 1 FROM {C.TABLE_RECORDS} WHERE run_id = ? AND cell = ?", (run_id, key)
        ).fetchone():
            db.execute(_BUMP, (run_id, C.COUNTER_DUPLICATES, 1))
            self._bump_cell(db, run_id, key, "duplicates")
            return CellStart(recorded=True)
        state = db.execute(
            f"SELECT state FROM {C.TABLE_RUNS} WHERE run_id = ?", (run_id,)
        ).fetchone()
        if state and (data := json.loads(state[0])).get("cancelled"):
            data["skipped"] = sorted({*data.get("skipped", ()), key})
            db.execute(
                f"UPDATE {C.TABLE_RUNS} SET state = ? WHERE run_id = ?", (json.dumps(data), run_id)
            )
            return CellStart(cancelled=True)
        self._bump_cell(db, run_id, key, "n")
        db.execute(_BUMP, (run_id, C.COUNTER_ATTEMPTS, 1))
        db.execute(_SET_FIRST, (run_id, C.COUNTER_FIRST_AT, now))
        row = db.execute(
            f"SELECT n FROM {C.TABLE_ATTEMPTS} WHERE run_id = ? AND cell = ?", (run_id, key)
        ).fetchone()
        return CellStart(attempt=int(row[0]))

    def advance(
        self, run_id: str, record: Mapping[str, Any] | Encoded | None, next_key: str | None
    ) -> tuple[bool | None, CellStart | None]:
        now = time.time()
        with self._tx() as db:
            written = None if record is None else self._put(db, run_id, record, now)
            start = None if next_key is None else self._start(db, run_id, next_key, now)
        return written, start

    def start_and_put(
        self, run_id: str, record: Mapping[str, Any] | Encoded, started: float
    ) -> tuple[bool | None, CellStart]:
        enc = encode(record)
        key = f"{enc.record['condition']}:{enc.record['replicate']}"
        with self._tx() as db:
            start = self._start(db, run_id, key, started)
            written = self._put(db, run_id, enc, time.time()) if start.attempt else None
        return written, start

    def put_records(self, run_id: str, records: list[Mapping[str, Any]]) -> list[bool]:
        now = time.time()
        with self._tx() as db:
            return [self._put(db, run_id, rec, now) for rec in records]

    def get_record(self, run_id: str, condition: str, replicate: int) -> dict[str, Any] | None:
        cell = f"{condition}:{replicate}"
        rows = self._read(
            f"SELECT record FROM {C.TABLE_RECORDS} WHERE run_id = ? AND cell = ?", (run_id, cell)
        )
        return decode_record(rows[0][0], f"run '{run_id}' cell {cell}") if rows else None

    def has_records(self, run_id: str, keys: list[str]) -> list[bool]:
        have: set[str] = set()
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            marks = ",".join("?" * len(part))
            have.update(
                r[0]
                for r in self._read(
                    f"SELECT cell FROM {C.TABLE_RECORDS} WHERE run_id = ? AND cell IN ({marks})",
                    (run_id, *part),
                )
            )
        return [k in have for k in keys]

    def iter_records(
        self, run_id: str, page_size: int = C.DEFAULT_PAGE_SIZE, *, steps: bool = True
    ) -> Iterator[dict[str, Any]]:
        self._require(run_id)
        last = ""
        while True:
            rows = self._read(
                f"SELECT r.cell, r.record, COALESCE(a.n, 0), COALESCE(a.duplicates, 0) "
                f"FROM {C.TABLE_RECORDS} r LEFT JOIN {C.TABLE_ATTEMPTS} a "
                "ON a.run_id = r.run_id AND a.cell = r.cell "
                "WHERE r.run_id = ? AND r.cell > ? ORDER BY r.cell LIMIT ?",
                (run_id, last, page_size),
            )
            recs = decode_page([r[1] for r in rows], [r[0] for r in rows], run_id, steps=steps)
            for rec, (_, _, attempts, dups) in zip(recs, rows, strict=True):
                rec["attempts"], rec["duplicates"] = int(attempts), int(dups)
                yield rec
            if len(rows) < page_size:
                return
            last = rows[-1][0]

    def delete_records(self, run_id: str, keys: list[str]) -> int:
        deleted = 0
        with self._tx() as db:
            for cell in keys:
                row = db.execute(
                    f"SELECT status, condition FROM {C.TABLE_RECORDS} "
                    "WHERE run_id = ? AND cell = ?",
                    (run_id, cell),
                ).fetchone()
                if row is None:
                    continue
                db.execute(
                    f"DELETE FROM {C.TABLE_RECORDS} WHERE run_id = ? AND cell = ?", (run_id, cell)
                )
                db.executemany(_BUMP, [(run_id, row[0], -1), (run_id, f"{row[0]}:{row[1]}", -1)])
                db.execute(
                    f"UPDATE {C.TABLE_ATTEMPTS} SET n = 0 WHERE run_id = ? AND cell = ?",
                    (run_id, cell),
                )
                deleted += 1
        return deleted

    # -- counters ------------------------------------------------------------------------------
    def counters(self, run_id: str) -> dict[str, float]:
        rows = self._read(f"SELECT name, value FROM {C.TABLE_COUNTERS} WHERE run_id = ?", (run_id,))
        return {name: float(value) for name, value in rows}

    def attempts(self, run_id: str) -> dict[str, int]:
        rows = self._read(
            f"SELECT cell, n FROM {C.TABLE_ATTEMPTS} WHERE run_id = ? AND n > 0", (run_id,)
        )
        return {cell: int(n) for cell, n in rows}

    # -- workers and state ---------------------------------------------------------------------
    def note_worker(self, run_id: str, host: str, info: Mapping[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO {C.TABLE_WORKERS} (run_id, host, info) VALUES (?, ?, ?)",
                (run_id, host, dumps(info)),
            )

    def workers(self, run_id: str) -> dict[str, dict[str, Any]]:
        rows = self._read(f"SELECT host, info FROM {C.TABLE_WORKERS} WHERE run_id = ?", (run_id,))
        return {host: decode_json(info, f"worker {host}") for host, info in rows}

    def update_state(self, run_id: str, **fields: Any) -> None:
        with self._tx() as db:
            row = db.execute(
                f"SELECT state FROM {C.TABLE_RUNS} WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise RunNotFoundError(self._missing(run_id))
            state = decode_json(row[0], f"state of run '{run_id}'") or {}
            state.update(fields)
            db.execute(
                f"UPDATE {C.TABLE_RUNS} SET state = ? WHERE run_id = ?", (json.dumps(state), run_id)
            )

    def take_skipped(self, run_id: str) -> set[str]:
        with self._tx() as db:
            row = db.execute(
                f"SELECT state FROM {C.TABLE_RUNS} WHERE run_id = ?", (run_id,)
            ).fetchone()
            data = decode_json(row[0], f"state of run '{run_id}'") if row else None
            if not data or "skipped" not in data:
                return set()
            skipped = set(data.pop("skipped"))
            db.execute(
                f"UPDATE {C.TABLE_RUNS} SET state = ? WHERE run_id = ?", (json.dumps(data), run_id)
            )
            return skipped

    def state(self, run_id: str) -> dict[str, Any]:
        rows = self._read(f"SELECT state FROM {C.TABLE_RUNS} WHERE run_id = ?", (run_id,))
        if not rows:
            return {}
        data: dict[str, Any] = decode_json(rows[0][0], f"state of run '{run_id}'") or {}
        return data

    # -- blobs -----------------------------------------------------------------------------------
    def put_blob(self, key: str, data: bytes) -> None:
        with self._tx() as db:
            db.execute(
                f"INSERT OR IGNORE INTO {C.TABLE_BLOBS} (key, data) VALUES (?, ?)", (key, data)
            )

    def get_blob(self, key: str) -> bytes | None:
        rows = self._read(f"SELECT data FROM {C.TABLE_BLOBS} WHERE key = ?", (key,))
        return bytes(rows[0][0]) if rows else None
