"""Marking a run failed when its store refused a write (a full or read-only disk, a Redis
out of memory), so that no run is left "running" when nothing can run it any more.

The mark is the run state's ``failed`` entry, ``{"cause": <one line>, "at": <unix s>}``:
``status`` shows the run as failed with the cause, waiting stops and says so, and
``resume`` clears it. It must get through when ordinary writes do not: on Redis it is
written by a script flagged ``allow-oom`` (Redis 7 runs it over ``maxmemory``); in the
SQLite store the reserve file beside the database is deleted first when the disk is full.
A read-only store can take no mark at all: ``mark_failed`` then says so by returning
False, and a ``--local`` run is known to have stopped by its driver process being gone
(``distributed/driver.py``).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.distributed.store.base import RunStore
from crystallize_dist.distributed.store.reserve import release_reserve
from crystallize_dist.distributed.store.sqlite_store import SQLiteStore
from crystallize_dist.errors import StoreError, StoreWriteError

_log = logging.getLogger("crystallize_dist")

#: KEYS: manifest, state; ARGV: the ``failed`` entry (JSON). Runs over maxmemory: the few
#: bytes of the mark are all it adds. -> 1, or 0 when the run is gone.
MARK_FAILED = """#!lua flags=allow-oom
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'failed', ARGV[1])
return 1
"""


def store_failure(exc: BaseException) -> str:
    """The cause a run fails for when its store refused the write ``exc``."""
    return f"the run store could not be written: {exc}"


def failure_entry(cause: str) -> dict[str, Any]:
    """The state entry of a run that failed for ``cause`` (made one line)."""
    return {"cause": " ".join(cause.split()), "at": time.time()}


def mark_failed(store: RunStore, run_id: str, cause: str) -> bool:
    """Mark ``run_id`` failed with ``cause`` (see the module docstring); True when the mark
    was written, False when the store could not take even that."""
    from crystallize_dist.distributed.store.redis_store import RedisStore

    entry = failure_entry(cause)
    try:
        if isinstance(store, RedisStore):
            script = store.r.register_script(MARK_FAILED)
            keys = [C.key_manifest(run_id), C.key_state(run_id)]
            return bool(store.client.call(lambda: script(keys=keys, args=[json.dumps(entry)])))
        try:
            store.update_state(run_id, failed=entry)
        except StoreWriteError:
            if not (isinstance(store, SQLiteStore) and release_reserve(store.path)):
                raise
            store.update_state(run_id, failed=entry)
        return True
    except StoreError as exc:
        _log.error("run %s: cannot mark it failed (%s): %s", run_id, cause, exc)
        return False


def store_refusal(store: RunStore) -> str | None:
    """Why ``store`` cannot take writes now, found without writing, or None: a Redis out of
    memory (``used_memory`` at ``maxmemory`` under ``noeviction``) or a read-only replica.
    A waiter asks this of a run that stands still (its workers may have died of it: a
    Celery worker ends when its broker refuses a write)."""
    from crystallize_dist.distributed.store.redis_store import RedisStore
    from crystallize_dist.urls import redact

    if not isinstance(store, RedisStore):
        return None
    memory = store.client.call(lambda: store.r.info("memory"))
    role = store.client.call(lambda: store.r.info("replication")).get("role")
    limit, used = int(memory.get("maxmemory") or 0), int(memory.get("used_memory") or 0)
    where = f"Redis at {redact(store.url)}"
    if limit and used >= limit and memory.get("maxmemory_policy") == "noeviction":
        return (
            f"the run store could not be written: {where} is out of memory (used_memory "
            f"{used} bytes, maxmemory {limit}, noeviction): raise its maxmemory or free memory"
        )
    if role in ("slave", "replica"):
        return (
            f"the run store could not be written: {where} is a read-only replica; point "
            "the run store at the primary"
        )
    return None


def failure_of(state: dict[str, Any]) -> str | None:
    """The cause a run's state says it failed for, or None."""
    entry = state.get("failed")
    if isinstance(entry, dict) and isinstance(entry.get("cause"), str):
        return str(entry["cause"])
    return None
