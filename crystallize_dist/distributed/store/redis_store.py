"""RedisStore: the distributed run store (keys in crystallize_dist.constants).

First-write-wins and the status counters change together in one Lua script, so a record
and its count can never disagree, whatever dies when.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from crystallize_dist import constants as C
from crystallize_dist.config import redact
from crystallize_dist.core.canonical import dumps
from crystallize_dist.distributed.store.base import (
    CellStart,
    Encoded,
    RunStore,
    decode_json,
    decode_or_flag,
    decode_page,
    decode_record,
    encode,
)
from crystallize_dist.distributed.store.scripts import ADVANCE, DELETE
from crystallize_dist.errors import BrokerError, RunNotFoundError, StoreError

T = TypeVar("T")


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
        self._own_client = client is None
        if client is None:
            client = redis.Redis.from_url(
                url,
                socket_connect_timeout=5,
                socket_timeout=60,
                health_check_interval=30,
                retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries),
                retry_on_error=[redis.ConnectionError, redis.TimeoutError],
            )
        self.r: Any = client
        self._run_keys: dict[str, list[str]] = {}
        self._script_loaded = False  # redis-py's stubs type replies as bytes | str
        self._advance = self.r.register_script(ADVANCE)
        self._delete = self.r.register_script(DELETE)
        self._held = threading.local()

    def _cell_client(self) -> Any:
        """The client of the calls made for every cell: it holds one of the pool's
        connections for this process and thread (taking a connection from the pool and
        giving it back costs about a quarter of such a call). A client given from outside
        (fakeredis in tests) is used as it is."""
        if not self._own_client:
            return self.r
        held = self._held
        if getattr(held, "pid", None) != os.getpid():  # new thread, or a forked child
            held.client = redis.Redis(
                connection_pool=self.r.connection_pool, single_connection_client=True
            )
            held.pid = os.getpid()
        return held.client

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except redis.AuthenticationError as exc:
            raise BrokerError(
                f"Redis at {redact(self.url)} refused the credentials: {exc}"
            ) from None
        except redis.ResponseError as exc:
            if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
                raise BrokerError(
                    f"Redis at {redact(self.url)} refused the credentials: {exc}"
                ) from None
            raise StoreError(f"Redis at {redact(self.url)}: {exc}") from None
        except redis.TimeoutError as exc:
            raise BrokerError(
                f"Redis at {redact(self.url)} did not answer in time ({exc}); is it a Redis "
                "server, and is it up?"
            ) from None
        except (redis.ConnectionError, OSError) as exc:
            raise BrokerError(f"cannot reach Redis at {redact(self.url)}: {exc}") from None
        except redis.InvalidResponse as exc:
            raise BrokerError(
                f"{redact(self.url)} does not answer in the Redis protocol ({exc}); is it a "
                "Redis server?"
            ) from None
        except redis.RedisError as exc:
            raise StoreError(f"Redis at {redact(self.url)}: {exc}") from None

    def _call(self, fn: Callable[[], T]) -> T:
        with self._errors():
            return fn()

    def ping(self) -> None:
        """Check Redis answers, within PING_TIMEOUT (the store's own calls wait longer)."""
        if not self._own_client:
            self._call(self.r.ping)
            return
        probe = redis.Redis.from_url(
            self.url,
            socket_connect_timeout=C.PING_TIMEOUT,
            socket_timeout=C.PING_TIMEOUT,
            retry=Retry(ExponentialBackoff(), 0),
        )
        try:
            self._call(probe.ping)
        finally:
            probe.close()

    def close(self) -> None:
        self.r.close()

    # -- runs ----------------------------------------------------------------------------------
    def create_run(self, run_id: str, manifest: Mapping[str, Any]) -> None:
        def go() -> None:
            created = self.r.set(C.key_manifest(run_id), dumps(manifest), nx=True, ex=self.ttl)
            if not created:
                raise StoreError(f"run '{run_id}' already exists")
            pipe = self.r.pipeline()
            pipe.zadd(C.KEY_RUNS, {run_id: float(manifest.get("created", time.time()))})
            pipe.hset(C.key_state(run_id), "created", json.dumps(time.time()))
            pipe.expire(C.key_state(run_id), self.ttl)
            pipe.execute()

        self._call(go)

    def manifest(self, run_id: str) -> dict[str, Any]:
        raw = self._call(lambda: self.r.get(C.key_manifest(run_id)))
        if raw is None:
            raise RunNotFoundError(f"no run '{run_id}' in {redact(self.url)}")
        data: dict[str, Any] = decode_json(raw, f"manifest of run '{run_id}'")
        return data

    def exists(self, run_id: str) -> bool:
        return bool(self._call(lambda: self.r.exists(C.key_manifest(run_id))))

    def run_ids(self, limit: int = 50) -> list[str]:
        ids = self._call(lambda: self.r.zrevrange(C.KEY_RUNS, 0, max(0, limit - 1)))
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    def _require(self, run_id: str) -> None:
        if not self.exists(run_id):
            raise RunNotFoundError(f"no run '{run_id}' in {redact(self.url)}")

    # -- records -------------------------------------------------------------------------------
    def _advance_call(
        self,
        run_id: str,
        record: Mapping[str, Any] | Encoded | None,
        next_key: str | None,
        *,
        ran: float | None = None,
    ) -> tuple[list[str], list[Any]]:
        keys = self._run_keys.get(run_id)
        if keys is None:
            keys = self._run_keys[run_id] = [
                C.key_records(run_id),
                C.key_counters(run_id),
                C.key_duplicates(run_id),
                C.key_attempts(run_id),
                C.key_state(run_id),
                C.key_skipped(run_id),
            ]
        if record is None:
            put = ["", "", "", ""]
        else:
            enc = encode(record)
            rec = enc.record
            field = f"{rec['condition']}:{rec['replicate']}"
            put = [field, enc.text, rec["status"], rec["condition"]]
        now = repr(time.time())
        if ran is None:
            return keys, [*put, now, self.ttl, next_key or ""]
        return keys, [*put, repr(ran), self.ttl, "", "ran", now]

    @staticmethod
    def _decode(reply: list[Any]) -> tuple[bool | None, CellStart]:
        written, attempt, cancelled, recorded = (int(x) for x in reply)
        return (
            None if written < 0 else bool(written),
            CellStart(attempt, bool(cancelled), bool(recorded)),
        )

    def advance(
        self, run_id: str, record: Mapping[str, Any] | Encoded | None, next_key: str | None
    ) -> tuple[bool | None, CellStart | None]:
        keys, args = self._advance_call(run_id, record, next_key)
        written, start = self._decode(self._call(lambda: self._run_advance(keys, args)))
        return written, (start if next_key else None)

    def _run_advance(self, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA of the advance script; redis-py's Script object (which loads the script
        when Redis lost it, e.g. after a restart) only on that rare miss - its own checks
        cost about a third of the call on the hot path."""
        try:
            return self._cell_client().evalsha(self._advance.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return self._advance(keys=keys, args=args)

    def start_and_put(
        self, run_id: str, record: Mapping[str, Any] | Encoded, started: float
    ) -> tuple[bool | None, CellStart]:
        keys, args = self._advance_call(run_id, record, None, ran=started)
        return self._decode(self._call(lambda: self._run_advance(keys, args)))

    def start_cell_soon(self, run_id: str, key: str) -> Callable[[], CellStart]:
        keys, args = self._advance_call(run_id, None, key)
        pool = self.r.connection_pool
        with self._errors():
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
                with self._errors():
                    try:
                        reply = conn.read_response()
                    except redis.exceptions.NoScriptError:
                        reply = None  # the script cache was emptied (a restart): slow way
            finally:
                pool.release(conn)
            if reply is None:
                return self.start_cell(run_id, key)
            return self._decode(reply)[1]

        return answer

    def put_records(self, run_id: str, records: list[Mapping[str, Any]]) -> list[bool]:
        if not records:
            return []

        def go() -> list[bool]:
            sha = self.r.script_load(ADVANCE)  # one round trip per batch: survives restarts
            pipe = self.r.pipeline(transaction=False)
            for rec in records:
                keys, args = self._advance_call(run_id, rec, None)
                pipe.evalsha(sha, len(keys), *keys, *args)
            return [bool(self._decode(x)[0]) for x in pipe.execute()]

        return self._call(go)

    def get_record(self, run_id: str, condition: str, replicate: int) -> dict[str, Any] | None:
        field = f"{condition}:{replicate}"
        raw = self._call(lambda: self.r.hget(C.key_records(run_id), field))
        return None if raw is None else decode_record(raw, f"run '{run_id}' cell {field}")

    def has_records(self, run_id: str, keys: list[str]) -> list[bool]:
        if not keys:
            return []

        def go() -> list[bool]:
            pipe = self.r.pipeline(transaction=False)
            for k in keys:
                pipe.hexists(C.key_records(run_id), k)
            return [bool(x) for x in pipe.execute()]

        return self._call(go)

    def iter_records(
        self, run_id: str, page_size: int = C.DEFAULT_PAGE_SIZE, *, steps: bool = True
    ) -> Iterator[dict[str, Any]]:
        self._require(run_id)
        cursor = 0
        seen: set[bytes] = set()
        while True:
            with self._errors():
                cursor, page = self.r.hscan(C.key_records(run_id), cursor, count=page_size)
            fields = [f for f in page if f not in seen]
            seen.update(fields)
            if fields:
                pipe = self.r.pipeline(transaction=False)
                pipe.hmget(C.key_attempts(run_id), fields)
                pipe.hmget(C.key_duplicates(run_id), fields)
                attempts, dups = self._call(pipe.execute)
                keys = [f.decode() for f in fields]
                recs = decode_page([page[f] for f in fields], keys, run_id, steps=steps)
                for rec, att, dup in zip(recs, attempts, dups, strict=True):
                    rec["attempts"] = int(att or 0)
                    rec["duplicates"] = int(dup or 0)
                    yield rec
            if cursor == 0:
                return

    def delete_records(self, run_id: str, keys: list[str]) -> int:
        if not keys:
            return 0

        def go() -> int:
            raws = self.r.hmget(C.key_records(run_id), keys)
            pipe = self.r.pipeline(transaction=False)
            for k, raw in zip(keys, raws, strict=True):
                if raw is None:
                    continue
                rec = decode_or_flag(raw, k, run_id)
                status = rec["status"] if rec.get("seed") is not None else ""
                self._delete(
                    keys=[C.key_records(run_id), C.key_counters(run_id), C.key_attempts(run_id)],
                    args=[k, k.rpartition(":")[0], status],
                    client=pipe,
                )
            return sum(int(x) for x in pipe.execute())

        return self._call(go)

    # -- counters ------------------------------------------------------------------------------
    def counters(self, run_id: str) -> dict[str, float]:
        raw = self._call(lambda: self.r.hgetall(C.key_counters(run_id)))
        return {k.decode(): float(v) for k, v in raw.items()}

    def attempts(self, run_id: str) -> dict[str, int]:
        raw = self._call(lambda: self.r.hgetall(C.key_attempts(run_id)))
        return {k.decode(): int(v) for k, v in raw.items()}

    # -- workers and state ---------------------------------------------------------------------
    def note_worker(self, run_id: str, host: str, info: Mapping[str, Any]) -> None:
        def go() -> None:
            pipe = self.r.pipeline(transaction=False)
            pipe.hset(C.key_workers(run_id), host, dumps(info))
            pipe.expire(C.key_workers(run_id), self.ttl)
            pipe.execute()

        self._call(go)

    def workers(self, run_id: str) -> dict[str, dict[str, Any]]:
        raw = self._call(lambda: self.r.hgetall(C.key_workers(run_id)))
        return {k.decode(): decode_json(v, f"worker {k.decode()}") for k, v in raw.items()}

    def update_state(self, run_id: str, **fields: Any) -> None:
        self._require(run_id)
        mapping = {k: json.dumps(v) for k, v in fields.items()}

        def go() -> None:
            pipe = self.r.pipeline(transaction=False)
            pipe.hset(C.key_state(run_id), mapping=mapping)
            # a run someone acts on (resume, cancel) lives another full TTL, manifest too
            for key in (C.key_state(run_id), C.key_manifest(run_id)):
                pipe.expire(key, self.ttl)
            pipe.execute()

        self._call(go)

    def state(self, run_id: str) -> dict[str, Any]:
        raw = self._call(lambda: self.r.hgetall(C.key_state(run_id)))
        return {k.decode(): decode_json(v, f"state {k.decode()}") for k, v in raw.items()}

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
