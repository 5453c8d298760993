"""The raw-Celery baseline of bench/overhead.py: a plain Celery app with crystallize-dist's
configuration (``celery_config``) and one no-op task that counts itself in Redis.

    BENCH_BROKER_URL=redis://... python -m celery -A noop_app worker -P prefork -c 2 \
        --without-gossip --without-mingle --without-heartbeat -Q bench-raw
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import Celery

from crystallize_dist.config import Settings
from crystallize_dist.distributed.app import celery_config

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("BENCH_QUEUE", "bench-raw")
TASK = "bench.noop"
COUNTER = "bench:noop:count"
FIRST_AT = "bench:noop:first_at"
LAST_AT = "bench:noop:last_at"

settings = Settings.from_env(broker_url=BROKER_URL, queue=QUEUE)
app = Celery("noop_app", broker=BROKER_URL, set_as_current=False)
app.conf.update(celery_config(settings))
app.conf.task_routes = {TASK: {"queue": QUEUE}}

_client: Any = None


def client() -> Any:
    """This process's Redis client (redis-py reconnects after a fork by itself)."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(BROKER_URL)
    return _client


@app.task(name=TASK, shared=False, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def noop(i: int) -> None:
    """Count this task and when it ran, in one round trip (as a cell record is one)."""
    now = repr(time.time())
    pipe = client().pipeline(transaction=False)
    pipe.incr(COUNTER)
    pipe.setnx(FIRST_AT, now)
    pipe.set(LAST_AT, now)
    pipe.execute()
