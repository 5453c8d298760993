"""The embedded store's SQLite file: its tables, one connection per process and thread, and
transactions that turn SQLite's errors into StoreErrors."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.distributed.store.read_only import (
    on_read_only_disk,
    read_only_connection,
    read_only_note,
)
from crystallize_dist.distributed.store.reserve import keep_reserve
from crystallize_dist.errors import StoreError, StoreWriteError

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {C.TABLE_RUNS} (
    run_id TEXT PRIMARY KEY, created REAL NOT NULL, manifest TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT '{{}}');
CREATE TABLE IF NOT EXISTS {C.TABLE_RECORDS} (
    run_id TEXT NOT NULL, cell TEXT NOT NULL, condition TEXT NOT NULL,
    replicate INTEGER NOT NULL, status TEXT NOT NULL, record TEXT NOT NULL,
    node TEXT NOT NULL DEFAULT '', PRIMARY KEY (run_id, cell));
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


#: SQLite's names of the errors of a store that cannot take a write (full, read-only)
_REFUSED = ("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN")


def store_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """The StoreError of ``exc``: a StoreWriteError when the file cannot take a write."""
    name = getattr(exc, "sqlite_errorname", "")
    refused = name.startswith(_REFUSED) or any(
        words in str(exc) for words in ("disk is full", "readonly database", "disk I/O error")
    )
    kind = StoreWriteError if refused else StoreError
    return kind(f"run store {path}: {exc}{read_only_note(path)}")


class SQLiteFile:
    """One SQLite file, opened by each process and thread on first use (WAL mode, so
    ``status`` can read while workers write), with its reserve file beside it (see
    ``reserve.py``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the run store folder {self.path.parent}: {exc.strerror or exc}"
            ) from None
        try:
            self.connection().executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open run store {self.path}: {exc}{read_only_note(self.path)}"
            ) from None
        keep_reserve(self.path)

    def connection(self) -> sqlite3.Connection:
        """This process's and thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            if self.path.exists() and on_read_only_disk(self.path):  # see read_only.py
                conn = self._local.conn = read_only_connection(self.path)
                self._local.pid = os.getpid()
                return conn
            try:
                conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            except sqlite3.Error as exc:
                raise StoreError(
                    f"cannot open run store {self.path}: {exc}{read_only_note(self.path)}"
                ) from None
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=60000")
            except sqlite3.Error as exc:
                conn.close()
                raise store_error(self.path, exc) from None
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), rolled back on any error."""
        db = self.connection()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise store_error(self.path, exc) from None
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows a query returns."""
        try:
            return self.connection().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
