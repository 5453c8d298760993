"""The Redis store's record path: the scripts of ``scripts.py`` and ``bulk_scripts.py``
(first write wins, with counters) - one record with the start of the next cell (``advance``)
or many in one call (``put_many``) - on the connection a worker process holds."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from crystallize_dist import constants as C
from crystallize_dist.distributed.store.base import CellStart
from crystallize_dist.distributed.store.bulk_scripts import PUT_MANY
from crystallize_dist.distributed.store.records import Encoded, encode
from crystallize_dist.distributed.store.redis_client import RedisClient
from crystallize_dist.distributed.store.scripts import ADVANCE


def _node(rec: Mapping[str, Any]) -> str:
    return str((rec.get("worker") or {}).get("node") or "")


def _started(rec: Mapping[str, Any], default: float) -> float:
    started = (rec.get("timing") or {}).get("started")
    return float(started) if isinstance(started, (int, float)) else default


class CellPath:
    """Calls of the record scripts for one store (see ``RunStore.advance``, ``put_ran``)."""

    def __init__(self, client: RedisClient, ttl: int) -> None:
        self.client = client
        self.r: Any = client.r
        self.ttl = ttl
        self._run_keys: dict[str, list[str]] = {}
        self._advance = self.r.register_script(ADVANCE)
        self._put_many = self.r.register_script(PUT_MANY)

    def keys(self, run_id: str) -> list[str]:
        return self._run_keys.get(run_id) or self._run_keys.setdefault(run_id, C.run_keys(run_id))

    def arguments(
        self, run_id: str, record: Mapping[str, Any] | Encoded | None, next_key: str | None
    ) -> tuple[list[str], list[Any]]:
        node = ""
        if record is None:
            put = ["", "", "", ""]
        else:
            enc = encode(record)
            rec = enc.record
            put = [f"{rec['condition']}:{rec['replicate']}", enc.text, rec["status"]]
            put.append(rec["condition"])
            node = _node(rec)
        now = repr(time.time())
        return self.keys(run_id), [*put, now, self.ttl, next_key or "", node]

    @staticmethod
    def decode(reply: list[Any]) -> tuple[bool | None, CellStart]:
        written, attempt, cancelled, recorded = (int(x) for x in reply)
        if written == -2:  # the run is gone (deleted or expired): nothing was written
            return None, CellStart(gone=True)
        done = None if written < 0 else bool(written)
        return done, CellStart(attempt, bool(cancelled), bool(recorded))

    def advance(
        self, run_id: str, record: Mapping[str, Any] | Encoded | None, next_key: str | None
    ) -> tuple[bool | None, CellStart | None]:
        keys, args = self.arguments(run_id, record, next_key)
        written, start = self.decode(self.client.call(lambda: self.run(self._advance, keys, args)))
        return written, (start if next_key else None)

    def run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA of a script; redis-py's Script object (it loads a script Redis lost) only
        on that rare miss: its own checks cost a third of the call on the hot path."""
        try:
            return self.client.cell_client().evalsha(script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return script(keys=keys, args=args)

    def put_many(
        self, run_id: str, records: Sequence[Mapping[str, Any] | Encoded], *, ran: bool
    ) -> list[int] | None:
        """``PUT_MANY`` for ``records`` (see ``scripts.py``), one call per node that wrote
        them (one round trip): one number per record, or None when the run is gone."""
        if not records:
            return []
        now = time.time()
        by_node: dict[str, tuple[list[int], list[Any], list[float]]] = {}
        for i, record in enumerate(records):
            data = (rec := encode(record)).record
            where, cells, firsts = by_node.setdefault(_node(data), ([], [], []))
            where.append(i)
            cells += [f"{data['condition']}:{data['replicate']}", data["status"], rec.text]
            if ran:
                firsts.append(_started(data, now))
        keys, mode = self.keys(run_id), "ran" if ran else ""
        calls = [
            [repr(now), self.ttl, mode, repr(min(firsts, default=now)), node, *cells]
            for node, (_, cells, firsts) in by_node.items()
        ]

        def go() -> list[Any]:
            if len(calls) == 1:
                return [self.run(self._put_many, keys, calls[0])]
            sha = self.r.script_load(PUT_MANY)  # survives a restart that emptied the cache
            pipe = self.r.pipeline(transaction=False)
            for args in calls:
                pipe.evalsha(sha, len(keys), *keys, *args)
            return list(pipe.execute())

        out: list[int] = [0] * len(records)
        for (where, _, _), reply in zip(by_node.values(), self.client.call(go), strict=True):
            codes = [int(x) for x in reply]
            if codes == [-2]:
                return None
            for i, code in zip(where, codes, strict=True):
                out[i] = code
        return out
