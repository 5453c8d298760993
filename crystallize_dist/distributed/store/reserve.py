"""The SQLite store's reserve: a file of ``SQLITE_RESERVE_BYTES`` kept beside the database
(its name plus ``SQLITE_RESERVE_SUFFIX``). When the disk fills up mid-run it is deleted, so
that the run can still be marked failed with the cause (``failure.mark_failed``); the next
command that opens the store puts it back once there is room."""

from __future__ import annotations

from pathlib import Path

from crystallize_dist import constants as C


def reserve_path(database: Path) -> Path:
    return database.with_name(database.name + C.SQLITE_RESERVE_SUFFIX)


def keep_reserve(database: Path) -> None:
    """Make the reserve file of ``database`` unless it is there (a disk too full or
    read-only for it keeps none)."""
    reserve = reserve_path(database)
    if reserve.exists():
        return
    try:
        reserve.write_bytes(bytes(C.SQLITE_RESERVE_BYTES))
    except OSError:
        try:  # a part written to a full disk is no reserve
            reserve.unlink(missing_ok=True)
        except OSError:
            pass


def release_reserve(database: Path) -> bool:
    """Delete the reserve file of ``database``, freeing its space for a last write; True
    when it was there."""
    try:
        reserve_path(database).unlink()
    except OSError:
        return False
    return True
