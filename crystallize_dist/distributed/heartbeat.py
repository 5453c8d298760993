"""Worker heartbeats: every few seconds a worker node says it is alive, which task messages
it holds and which cells of which runs are in flight.

The beat runs on a thread of the worker's main process (the Celery consumer, which reserves
every message the node holds). Each beat writes the node's key (``constants.key_node``) and
its score in ``KEY_NODES``, gives the runs it works on their full TTL again, and then looks for
messages nobody alive holds (``reclaim.reclaim_orphans``): a node silent for longer than the
grace period is dead, and the messages it held go back to the queue for the others.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any

import redis

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.engine.environment import versions
from crystallize_dist.urls import redact

_log = logging.getLogger("crystallize_dist.worker")


def _requests() -> list[Any]:
    """The task requests this worker process holds (reserved, running or waiting for their
    countdown), read from Celery's worker state."""
    from celery.worker import state

    for _ in range(5):  # the consumer thread may change the dict while it is copied
        try:
            return list(state.requests.values())
        except RuntimeError:
            continue
    return []


def held(requests: Iterable[Any]) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Of our task messages among ``requests``: each one's delivery tag with its number of
    cells, and the cells in flight per run (``condition:replicate``)."""
    tags: dict[str, int] = {}
    cells: dict[str, list[str]] = {}
    for request in requests:
        if getattr(request, "task_name", None) != C.TASK_RUN_CELLS:
            continue
        args: Any = getattr(request, "args", None) or ()
        if len(args) != 2 or not isinstance(args[0], str) or not isinstance(args[1], list):
            continue
        keys = [f"{c[0]}:{c[1]}" for c in args[1] if isinstance(c, list) and len(c) == 3]
        cells.setdefault(args[0], []).extend(keys)
        tag = getattr(getattr(request, "message", None), "delivery_tag", None)
        if tag is not None:
            tags[str(tag)] = len(keys)
    return tags, cells


class NodeBeat:
    """The heartbeat of one worker node (see the module docstring)."""

    def __init__(self, settings: Settings, node: str, pool: str, concurrency: int | None) -> None:
        self.settings = settings
        self.node = node
        self.info = {
            "node": node,
            "host": node.rpartition("@")[2] or socket.gethostname(),
            "pid": os.getpid(),
            "pool": pool,
            "concurrency": concurrency,
            "queue": settings.queue,
            "versions": dict(versions()),
            "started": time.time(),
        }
        self.client = redis.Redis.from_url(
            settings.broker_url, socket_connect_timeout=5, socket_timeout=10
        )
        self.cells_done = 0
        self._last_tags: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="crystallize-beat", daemon=True)
        self._down = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and say the node stopped (not died): its messages go back to the
        queue through Celery's own shutdown."""
        self._stop.set()
        self._thread.join(timeout=self.settings.heartbeat_interval + 5)
        try:
            self.beat([], stopped=True)
        except redis.RedisError:
            pass
        self.client.close()

    def beat(self, requests: list[Any], *, stopped: bool = False) -> dict[str, list[str]]:
        """Write one heartbeat; returns the node's cells in flight per run."""
        tags, cells = held(requests)
        # a message held at the last beat and gone now was done (or handed back)
        self.cells_done += sum(n for tag, n in self._last_tags.items() if tag not in tags)
        self._last_tags = tags
        now = time.time()
        body = {
            **self.info,
            "last_beat": now,
            "held": sorted(tags),
            "runs": cells,
            "cells_done": self.cells_done,
            "stopped": stopped,
        }
        pipe = self.client.pipeline(transaction=False)
        pipe.set(C.key_node(self.node), json.dumps(body), ex=C.NODE_TTL)
        pipe.zadd(C.KEY_NODES, {self.node: now})
        pipe.zremrangebyscore(C.KEY_NODES, "-inf", f"({now - C.NODE_TTL}")
        for run_id in cells:  # the runs this node works on live another full TTL
            for key in C.run_keys(run_id):
                pipe.expire(key, self.settings.result_ttl)
        pipe.execute()
        return cells

    def _loop(self) -> None:
        from crystallize_dist.distributed.reclaim import reclaim_orphans

        interval = self.settings.heartbeat_interval
        while True:
            try:
                self.beat(_requests())
                reclaim_orphans(self.client, self.settings, holder=self.node)
                if self._down:
                    _log.warning("heartbeat: Redis at %s is back", redact(self.settings.broker_url))
                    self._down = False
            except redis.RedisError as exc:
                if not self._down:
                    _log.warning(
                        "heartbeat: cannot reach Redis at %s (%s); trying again every %gs",
                        redact(self.settings.broker_url),
                        exc,
                        interval,
                    )
                    self._down = True
            except Exception:  # the beat must never take the worker down
                _log.exception("heartbeat failed")
            if self._stop.wait(interval):
                return
