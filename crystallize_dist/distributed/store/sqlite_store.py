"""SQLiteStore: the embedded run store (``--local``): one file, no server.

Every process opens its own connection (WAL mode, so ``status`` can read while workers
write); first-write-wins is ``INSERT OR IGNORE`` and its counters change in the same
transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.canonical import dumps
from crystallize_dist.distributed.store import sqlite_cells as cells
from crystallize_dist.distributed.store.base import CellStart, RunStore
from crystallize_dist.distributed.store.compact import RecordTemplate
from crystallize_dist.distributed.store.records import (
    Encoded,
    RecordCheck,
    decode_json,
    decode_manifest,
    decode_page,
    decode_record,
)
from crystallize_dist.distributed.store.sqlite_db import SQLiteFile
from crystallize_dist.errors import RunNotFoundError, StoreError


class SQLiteStore(RunStore):
    """A run store in one SQLite file (``sqlite:///path/to/file``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).absolute()  # errors name it in full: --local runs live here
        self.url = f"sqlite:///{self.path}"
        self.file = SQLiteFile(self.path)
        self._tx = self.file.tx
        self._read = self.file.read

    def _db(self) -> sqlite3.Connection:
        return self.file.connection()

    def close(self) -> None:
        self.file.close()

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
        return decode_manifest(rows[0][0], run_id)

    def exists(self, run_id: str) -> bool:
        return bool(self._read(f"SELECT 1 FROM {C.TABLE_RUNS} WHERE run_id = ?", (run_id,)))

    def run_ids(self, limit: int = 50) -> list[str]:
        rows = self._read(
            f"SELECT run_id FROM {C.TABLE_RUNS} ORDER BY created DESC LIMIT ?", (limit,)
        )
        return [r[0] for r in rows]

    def runs_created_before(self, cutoff: float) -> list[str]:
        rows = self._read(f"SELECT run_id FROM {C.TABLE_RUNS} WHERE created < ?", (cutoff,))
        return [r[0] for r in rows]

    def delete_run(self, run_id: str) -> bool:
        tables = [C.TABLE_RECORDS, C.TABLE_COUNTERS, C.TABLE_ATTEMPTS, C.TABLE_WORKERS]
        tables.append(C.TABLE_NODE_NUMBERS)
        with self._tx() as db:
            gone = db.execute(f"DELETE FROM {C.TABLE_RUNS} WHERE run_id = ?", (run_id,))
            for table in tables:
                db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            return gone.rowcount > 0

    def _missing(self, run_id: str) -> str:
        return (
            f"no run '{run_id}' in {self.path} (--local runs are kept under "
            "CRYSTALLIZE_DIST_HOME, by default ./.crystallize-dist of the folder you submit from)"
        )

    def _require(self, run_id: str) -> None:
        if not self.exists(run_id):
            raise RunNotFoundError(self._missing(run_id))

    def advance(
        self, run_id: str, record: Mapping[str, Any] | Encoded | None, next_key: str | None
    ) -> tuple[bool | None, CellStart | None]:
        now = time.time()
        with self._tx() as db:
            if not cells.exists(db, run_id):
                return None, (None if next_key is None else CellStart(gone=True))
            written = None if record is None else cells.put(db, run_id, record, now)
            start = None if next_key is None else cells.start(db, run_id, next_key, now)
        return written, start

    def put_ran(
        self, run_id: str, records: Sequence[Mapping[str, Any] | Encoded]
    ) -> list[CellStart]:
        codes = self._put_many(run_id, records, ran=True)
        if codes is None:
            return [CellStart(gone=True)] * len(records)
        return [
            CellStart(n) if n > 0 else CellStart(cancelled=n < 0, recorded=n == 0) for n in codes
        ]

    def put_records(
        self, run_id: str, records: Sequence[Mapping[str, Any] | Encoded]
    ) -> list[bool]:
        codes = self._put_many(run_id, records, ran=False)
        return [False] * len(records) if codes is None else [n == 1 for n in codes]

    def _put_many(
        self, run_id: str, records: Sequence[Mapping[str, Any] | Encoded], *, ran: bool
    ) -> list[int] | None:
        """One transaction for ``records`` (``sqlite_cells.put_many``); None when the run
        is gone."""
        with self._tx() as db:
            if not cells.exists(db, run_id):
                return None
            return cells.put_many(db, run_id, records, time.time(), ran=ran)

    def get_record(self, run_id: str, condition: str, replicate: int) -> dict[str, Any] | None:
        cell = f"{condition}:{replicate}"
        rows = self._read(
            f"SELECT record FROM {C.TABLE_RECORDS} WHERE run_id = ? AND cell = ?", (run_id, cell)
        )
        if not rows:
            return None
        where = f"run '{run_id}' cell {cell}"
        return decode_record(rows[0][0], where, key=cell, template=self.template(run_id))

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
        self,
        run_id: str,
        page_size: int = C.DEFAULT_PAGE_SIZE,
        *,
        steps: bool = True,
        check: RecordCheck | None = None,
        template: RecordTemplate | None = None,
    ) -> Iterator[dict[str, Any]]:
        tpl = template or self.template(run_id)  # RunNotFoundError for an unknown run
        last = ""
        while True:
            rows = self._read(
                f"SELECT r.cell, r.record, COALESCE(a.n, 0), COALESCE(a.duplicates, 0) "
                f"FROM {C.TABLE_RECORDS} r LEFT JOIN {C.TABLE_ATTEMPTS} a "
                "ON a.run_id = r.run_id AND a.cell = r.cell "
                "WHERE r.run_id = ? AND r.cell > ? ORDER BY r.cell LIMIT ?",
                (run_id, last, page_size),
            )
            recs = decode_page(
                [r[1] for r in rows],
                [r[0] for r in rows],
                run_id,
                steps=steps,
                check=check,
                template=tpl,
            )
            for rec, (_, _, attempts, dups) in zip(recs, rows, strict=True):
                rec["attempts"], rec["duplicates"] = int(attempts), int(dups)
                yield rec
            if len(rows) < page_size:
                return
            last = rows[-1][0]

    def delete_records(self, run_id: str, keys: list[str]) -> int:
        with self._tx() as db:
            return cells.delete(db, run_id, keys)

    def count_records(self, run_id: str) -> int:
        rows = self._read(f"SELECT COUNT(*) FROM {C.TABLE_RECORDS} WHERE run_id = ?", (run_id,))
        return int(rows[0][0])

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

    def node_number(self, run_id: str, node: str) -> int:
        with self._tx() as db:
            if not cells.exists(db, run_id):
                return 0
            return cells.node_number(db, run_id, node)

    def workers(self, run_id: str) -> dict[str, dict[str, Any]]:
        rows = self._read(f"SELECT host, info FROM {C.TABLE_WORKERS} WHERE run_id = ?", (run_id,))
        return {host: decode_json(info, f"worker {host}") for host, info in rows}

    def note_load_failure(self, run_id: str, node: str, error: str) -> int:
        with self._tx() as db:
            row = db.execute(
                f"SELECT state FROM {C.TABLE_RUNS} WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise RunNotFoundError(self._missing(run_id))
            state = decode_json(row[0], f"state of run '{run_id}'") or {}
            state.setdefault("load_errors", {})[node] = error
            db.execute(
                f"UPDATE {C.TABLE_RUNS} SET state = ? WHERE run_id = ?", (json.dumps(state), run_id)
            )
            db.execute(cells.BUMP, (run_id, C.COUNTER_LOAD_FAILURES, 1))
            found = db.execute(
                f"SELECT value FROM {C.TABLE_COUNTERS} WHERE run_id = ? AND name = ?",
                (run_id, C.COUNTER_LOAD_FAILURES),
            ).fetchone()
            return int(found[0])

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
