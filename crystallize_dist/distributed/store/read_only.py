"""A SQLite run store on a file system mounted read-only (a disk the kernel remounted
read-only after errors, a read-only snapshot or volume). Its file is opened read-only, so
that its runs can still be read (``status``, ``result``, ``list``), and every write is
refused as a StoreWriteError that says the file system is read-only.

A database in WAL mode that was closed cleanly has no ``-wal`` file; SQLite can read it
read-only only as ``immutable`` (it cannot make the ``-shm`` file a WAL reader needs). When a
``-wal`` file is left (its writer was killed), it is opened ``mode=ro`` so that the records
in it are read too."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from crystallize_dist.errors import StoreError


def on_read_only_disk(path: Path) -> bool:
    """True when the file system holding ``path`` is mounted read-only."""
    try:
        return bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def read_only_note(path: Path) -> str:
    """What to add to an error of the store at ``path``: that its file system is read-only,
    when it is."""
    return f"; the file system holding it ({path.parent}) is mounted read-only" * int(
        on_read_only_disk(path)
    )


def read_only_connection(path: Path) -> sqlite3.Connection:
    """A connection that reads the database at ``path`` without writing a byte."""
    wal = path.with_name(path.name + "-wal")
    flags = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    try:
        return sqlite3.connect(
            f"file:{quote(str(path.resolve()))}?{flags}",
            uri=True,
            timeout=60,
            isolation_level=None,
        )
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open run store {path}: {exc}{read_only_note(path)}") from None
