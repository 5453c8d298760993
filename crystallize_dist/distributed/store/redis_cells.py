"""The Redis store's record path: the ``advance`` script (``scripts.py``) that writes a
record first-write-wins and starts the next cell in one atomic round trip, and the ways a
worker calls it (pipelined, or sent now and read later)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import redis

from crystallize_dist import constants as C
from crystallize_dist.distributed.store.base import CellStart
from crystallize_dist.distributed.store.records import Encoded, encode
from crystallize_dist.distributed.store.redis_client import RedisClient
from crystallize_dist.distributed.store.scripts import ADVANCE


class CellPath:
    """Calls of the advance script for one store (see ``RunStore.advance``)."""

    def __init__(self, client: RedisClient, ttl: int) -> None:
        self.client = client
        self.r: Any = client.r
        self.ttl = ttl
        self._run_keys: dict[str, list[str]] = {}
        self._script_loaded = False
        self._advance = self.r.register_script(ADVANCE)

    def arguments(
        self,
        run_id: str,
        record: Mapping[str, Any] | Encoded | None,
        next_key: str | None,
        *,
        ran: float | None = None,
    ) -> tuple[list[str], list[Any]]:
        keys = self._run_keys.get(run_id)
        if keys is None:
            keys = self._run_keys[run_id] = C.run_keys(run_id)
        node = ""
        if record is None:
            put = ["", "", "", ""]
        else:
            enc = encode(record)
            rec = enc.record
            field = f"{rec['condition']}:{rec['replicate']}"
            put = [field, enc.text, rec["status"], rec["condition"]]
            node = str((rec.get("worker") or {}).get("node") or "")
        now = repr(time.time())
        if ran is None:
            return keys, [*put, now, self.ttl, next_key or "", "", "", node]
        return keys, [*put, repr(ran), self.ttl, "", "ran", now, node]

    @staticmethod
    def decode(reply: list[Any]) -> tuple[bool | None, CellStart]:
        written, attempt, cancelled, recorded = (int(x) for x in reply)
        if written == -2:  # the run is gone (deleted or expired): nothing was written
            return None, CellStart(gone=True)
        return (
            None if written < 0 else bool(written),
            CellStart(attempt, bool(cancelled), bool(recorded)),
        )

    def advance(
        self, run_id: str, record: Mapping[str, Any] | Encoded | None, next_key: str | None
    ) -> tuple[bool | None, CellStart | None]:
        keys, args = self.arguments(run_id, record, next_key)
        written, start = self.decode(self.client.call(lambda: self.run(keys, args)))
        return written, (start if next_key else None)

    def run(self, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA of the advance script; redis-py's Script object (which loads the script
        when Redis lost it, e.g. after a restart) only on that rare miss - its own checks
        cost about a third of the call on the hot path."""
        try:
            return self.client.cell_client().evalsha(self._advance.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return self._advance(keys=keys, args=args)

    def start_and_put(
        self, run_id: str, record: Mapping[str, Any] | Encoded, started: float
    ) -> tuple[bool | None, CellStart]:
        keys, args = self.arguments(run_id, record, None, ran=started)
        return self.decode(self.client.call(lambda: self.run(keys, args)))

    def start_cell_soon(self, run_id: str, key: str) -> Callable[[], CellStart]:
        keys, args = self.arguments(run_id, None, key)
        pool = self.r.connection_pool
        with self.client.errors():
            if not self._script_loaded:  # the start must count even if the cell then crashes
                self.r.script_load(ADVANCE)
                self._script_loaded = True
            conn = pool.get_connection()
            try:
                conn.send_command("EVALSHA", self._advance.sha, len(keys), *keys, *args)
            except Exception:
                pool.release(conn)
                raise

        def answer() -> CellStart:
            try:
                with self.client.errors():
                    try:
                        reply = conn.read_response()
                    except redis.exceptions.NoScriptError:
                        reply = None  # the script cache was emptied (a restart): slow way
            finally:
                pool.release(conn)
            if reply is None:
                return self.advance(run_id, None, key)[1] or CellStart()
            return self.decode(reply)[1]

        return answer

    def put_records(self, run_id: str, records: list[Mapping[str, Any]]) -> list[bool]:
        if not records:
            return []

        def go() -> list[bool]:
            sha = self.r.script_load(ADVANCE)  # one round trip per batch: survives restarts
            pipe = self.r.pipeline(transaction=False)
            for rec in records:
                keys, args = self.arguments(run_id, rec, None)
                pipe.evalsha(sha, len(keys), *keys, *args)
            return [bool(self.decode(x)[0]) for x in pipe.execute()]

        return self.client.call(go)
