"""The Redis run store's connection: one client with retries, one held connection per
process and thread for the per-cell calls, and Redis errors turned into one-line
BrokerErrors and StoreErrors that never show a password."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from crystallize_dist import constants as C
from crystallize_dist.distributed.store.redis_errors import one_line

T = TypeVar("T")


class RedisClient:
    """A client of the Redis at ``url`` (or the ``client`` given, e.g. fakeredis)."""

    def __init__(self, url: str, *, retries: int = 3, client: redis.Redis | None = None) -> None:
        self.url = url
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
        self.r: Any = client  # redis-py's stubs type replies as bytes | str
        self._held = threading.local()

    def cell_client(self) -> Any:
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
    def errors(self) -> Iterator[None]:
        """Redis errors raised in the block as one-line BrokerErrors (cannot reach, refused
        credentials, not Redis) and StoreErrors (Redis refused a command; a StoreWriteError
        when it cannot take writes at all): see ``redis_errors``."""
        try:
            yield
        except (redis.RedisError, OSError) as exc:
            raise one_line(self.url, exc) from None

    def call(self, fn: Callable[[], T]) -> T:
        with self.errors():
            return fn()

    def ping(self) -> None:
        """Check Redis answers, within PING_TIMEOUT (the store's own calls wait longer)."""
        if not self._own_client:
            self.call(self.r.ping)
            return
        probe = redis.Redis.from_url(
            self.url,
            socket_connect_timeout=C.PING_TIMEOUT,
            socket_timeout=C.PING_TIMEOUT,
            retry=Retry(ExponentialBackoff(), 0),
        )
        try:
            self.call(probe.ping)
        finally:
            probe.close()

    def close(self) -> None:
        self.r.close()
