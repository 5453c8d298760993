"""RedisStore: the distributed run store (keys in crystallize_dist.constants).

First-write-wins and the status counters change together in one Lua script, so a record
and its count can never disagree, whatever dies when.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

import redis

from crystallize_dist import constants as C
from crystallize_dist.canonical import dumps
from crystallize_dist.distributed.store.base import CellStart, RunStore
from crystallize_dist.distributed.store.compact import RecordTemplate
from crystallize_dist.distributed.store.records import (
    Encoded,
    RecordCheck,
    decode_json,
    decode_manifest,
)
from crystallize_dist.distributed.store.redis_cells import CellPath
from crystallize_dist.distributed.store.redis_client import RedisClient
from crystallize_dist.distributed.store.redis_records import RecordPages
from crystallize_dist.distributed.store.scripts import NODE_NUMBER
from crystallize_dist.errors import RunNotFoundError, StoreError
from crystallize_dist.urls import redact

T = TypeVar("T")


#: state field prefix of a worker node's load failure (``load_error:<node>``)
LOAD_ERROR = "load_error:"


def _start_of(code: int) -> CellStart:
    """What ``PUT_MANY`` says of a cell that ran: its attempt, a duplicate or cancelled."""
    if code > 0:
        return CellStart(code)
    return CellStart(cancelled=True) if code < 0 else CellStart(recorded=True)


class RedisStore(RunStore):
    """A run store on Redis (``redis://`` or ``rediss://`` URL)."""

    def __init__(
        self,
        url: str,
        *,
        ttl: int = C.DEFAULT_RESULT_TTL,
        retries: int = 3,
        client: redis.Redis | None = None,
    ) -> None:
        self.url = url
        self.ttl = int(ttl)
        self.client = RedisClient(url, retries=retries, client=client)
        self.r: Any = self.client.r
        self._call = self.client.call
        self._errors = self.client.errors
        self._cell_client = self.client.cell_client
        self.cells = CellPath(self.client, self.ttl)
        self.records = RecordPages(self.client)
        self._node_number = self.r.register_script(NODE_NUMBER)

    def ping(self) -> None:
        """Check Redis answers, within PING_TIMEOUT (the store's own calls wait longer)."""
        self.client.ping()

    def close(self) -> None:
        self.r.close()

    # -- runs ----------------------------------------------------------------------------------
    def create_run(self, run_id: str, manifest: Mapping[str, Any]) -> None:
        def go() -> None:
            created = self.r.set(C.key_manifest(run_id), dumps(manifest), nx=True, ex=self.ttl)
            if not created:
                raise StoreError(f"run '{run_id}' already exists")
            now = time.time()
            pipe = self.r.pipeline()
            pipe.zadd(C.KEY_RUNS, {run_id: now})
            # the index holds no run older than the TTL, and expires with the newest run
            pipe.zremrangebyscore(C.KEY_RUNS, "-inf", f"({now - self.ttl}")
            pipe.expire(C.KEY_RUNS, self.ttl)
            pipe.hset(C.key_state(run_id), "created", json.dumps(now))
            pipe.expire(C.key_state(run_id), self.ttl)
            pipe.execute()

        self._call(go)

    def manifest(self, run_id: str) -> dict[str, Any]:
        raw = self._call(lambda: self.r.get(C.key_manifest(run_id)))
        if raw is None:
            raise RunNotFoundError(f"no run '{run_id}' in {redact(self.url)}")
        return decode_manifest(raw, run_id)

    def exists(self, run_id: str) -> bool:
        return bool(self._call(lambda: self.r.exists(C.key_manifest(run_id))))

    def run_ids(self, limit: int = 50) -> list[str]:
        ids = self._call(lambda: self.r.zrevrange(C.KEY_RUNS, 0, max(0, limit - 1)))
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    def runs_created_before(self, cutoff: float) -> list[str]:
        ids = self._call(lambda: self.r.zrangebyscore(C.KEY_RUNS, "-inf", f"({cutoff}"))
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    def delete_run(self, run_id: str) -> bool:
        def go() -> bool:
            pipe = self.r.pipeline()
            pipe.delete(*C.run_keys(run_id))
            pipe.zrem(C.KEY_RUNS, run_id)
            return bool(pipe.execute()[0])

        return self._call(go)

    def touch(self, run_id: str, blobs: Sequence[str] = ()) -> None:
        def go() -> None:
            pipe = self.r.pipeline(transaction=False)
            for key in (*C.run_keys(run_id), *(C.key_bundle(b) for b in blobs)):
                pipe.expire(key, self.ttl)
            pipe.execute()

        self._call(go)

    def _require(self, run_id: str) -> None:
        if not self.exists(run_id):
            raise RunNotFoundError(f"no run '{run_id}' in {redact(self.url)}")

    # -- records -------------------------------------------------------------------------------
    def advance(
        self, run_id: str, record: Mapping[str, Any] | Encoded | None, next_key: str | None
    ) -> tuple[bool | None, CellStart | None]:
        return self.cells.advance(run_id, record, next_key)

    def put_ran(
        self, run_id: str, records: Sequence[Mapping[str, Any] | Encoded]
    ) -> list[CellStart]:
        codes = self.cells.put_many(run_id, records, ran=True)
        if codes is None:
            return [CellStart(gone=True)] * len(records)
        return [_start_of(code) for code in codes]

    def put_records(
        self, run_id: str, records: Sequence[Mapping[str, Any] | Encoded]
    ) -> list[bool]:
        codes = self.cells.put_many(run_id, records, ran=False)
        return [False] * len(records) if codes is None else [code == 1 for code in codes]

    def get_record(self, run_id: str, condition: str, replicate: int) -> dict[str, Any] | None:
        return self.records.get(run_id, condition, replicate, self.template)

    def has_records(self, run_id: str, keys: list[str]) -> list[bool]:
        return self.records.has(run_id, keys)

    def iter_records(
        self,
        run_id: str,
        page_size: int = C.DEFAULT_PAGE_SIZE,
        *,
        steps: bool = True,
        check: RecordCheck | None = None,
        template: RecordTemplate | None = None,
    ) -> Iterator[dict[str, Any]]:
        if template is None:
            template = self.template(run_id)  # RunNotFoundError for an unknown run
        else:
            self._require(run_id)
        return self.records.pages(run_id, page_size, steps=steps, check=check, template=template)

    def delete_records(self, run_id: str, keys: list[str]) -> int:
        return self.records.delete(run_id, keys)

    def count_records(self, run_id: str) -> int:
        return int(self._call(lambda: self.r.hlen(C.key_records(run_id))))

    # -- counters ------------------------------------------------------------------------------
    def counters(self, run_id: str) -> dict[str, float]:
        raw = self._call(lambda: self.r.hgetall(C.key_counters(run_id)))
        return {k.decode(): float(v) for k, v in raw.items()}

    def attempts(self, run_id: str) -> dict[str, int]:
        return self.records.attempts(run_id)

    # -- workers and state ---------------------------------------------------------------------
    def note_worker(self, run_id: str, host: str, info: Mapping[str, Any]) -> None:
        def go() -> None:
            pipe = self.r.pipeline(transaction=False)
            pipe.hset(C.key_workers(run_id), host, dumps(info))
            for key in C.run_keys(run_id):
                pipe.expire(key, self.ttl)
            pipe.execute()

        self._call(go)

    def node_number(self, run_id: str, node: str) -> int:
        keys, args = self.cells.keys(run_id), [node, self.ttl]
        return int(self._call(lambda: self.cells.run(self._node_number, keys, args)))

    def workers(self, run_id: str) -> dict[str, dict[str, Any]]:
        raw = self._call(lambda: self.r.hgetall(C.key_workers(run_id)))
        return {k.decode(): decode_json(v, f"worker {k.decode()}") for k, v in raw.items()}

    def note_load_failure(self, run_id: str, node: str, error: str) -> int:
        def go() -> int:
            pipe = self.r.pipeline()
            pipe.hset(C.key_state(run_id), f"{LOAD_ERROR}{node}", json.dumps(error))
            pipe.hincrby(C.key_counters(run_id), C.COUNTER_LOAD_FAILURES, 1)
            for key in C.run_keys(run_id):
                pipe.expire(key, self.ttl)
            return int(pipe.execute()[1])

        return self._call(go)

    def update_state(self, run_id: str, **fields: Any) -> None:
        self._require(run_id)
        mapping = {k: json.dumps(v) for k, v in fields.items()}

        def go() -> None:
            pipe = self.r.pipeline(transaction=False)
            pipe.hset(C.key_state(run_id), mapping=mapping)
            for key in C.run_keys(run_id):  # every key of the run lives another full TTL
                pipe.expire(key, self.ttl)
            pipe.execute()

        self._call(go)

    def state(self, run_id: str) -> dict[str, Any]:
        raw = self._call(lambda: self.r.hgetall(C.key_state(run_id)))
        out: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for k, v in raw.items():
            name = k.decode()
            value = decode_json(v, f"state {name}")
            if name.startswith(LOAD_ERROR):
                errors[name[len(LOAD_ERROR) :]] = value
            else:
                out[name] = value
        if errors:
            out["load_errors"] = errors
        return out

    def take_skipped(self, run_id: str) -> set[str]:
        def go() -> Any:
            pipe = self.r.pipeline()  # MULTI: a skip noted meanwhile is never lost
            pipe.smembers(C.key_skipped(run_id))
            pipe.delete(C.key_skipped(run_id))
            return pipe.execute()[0]

        return {k.decode() if isinstance(k, bytes) else str(k) for k in self._call(go)}

    # -- blobs -----------------------------------------------------------------------------------
    def put_blob(self, key: str, data: bytes) -> None:
        self._call(lambda: self.r.set(C.key_bundle(key), data, ex=self.ttl))

    def get_blob(self, key: str) -> bytes | None:
        raw = self._call(lambda: self.r.get(C.key_bundle(key)))
        return None if raw is None else bytes(raw)
