"""The worker nodes as their heartbeats describe them (``crystallize-dist workers``, the
report's workers, ``status --watch``): live ones and those that stopped beating within
``NODE_TTL``. Heartbeats are not signed: each field is read by its shape
(``reclaim.parse_beat``), and a field of the wrong shape shows as unknown."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crystallize_dist.config import Settings


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, (str, int, float)) else None


@dataclass
class NodeView:
    """One worker node: who it is, how it runs cells, when it last beat, what it did."""

    node: str
    host: str | None
    pid: int | None
    pool: str | None
    concurrency: int | None
    queue: str | None
    versions: dict[str, str] = field(default_factory=dict)
    last_beat: float | None = None
    state: str = "dead"
    cells_done: int = 0
    #: run id -> cells of it in flight on the node
    runs: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "host": self.host,
            "pid": self.pid,
            "pool": self.pool,
            "concurrency": self.concurrency,
            "queue": self.queue,
            "versions": self.versions,
            "last_beat": self.last_beat,
            "state": self.state,
            "cells_done": self.cells_done,
            "runs": self.runs,
        }


def node_view(
    name: str, beat: Mapping[str, Any], versions: dict[str, str], grace: float, now: float
) -> NodeView:
    """A NodeView of one parsed heartbeat (``reclaim.parse_beat``) and its versions."""
    last = beat.get("last_beat")
    stopped = bool(beat.get("stopped"))
    alive = isinstance(last, float) and now - last <= grace and not stopped
    pid = beat.get("pid")
    conc = beat.get("concurrency")
    runs = beat.get("runs") if isinstance(beat.get("runs"), Mapping) else {}
    return NodeView(
        node=name,
        host=_text(beat.get("host")),
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        pool=_text(beat.get("pool")),
        concurrency=conc if isinstance(conc, int) and not isinstance(conc, bool) else None,
        queue=_text(beat.get("queue")),
        versions=versions,
        last_beat=last if isinstance(last, float) else None,
        state="alive" if alive else ("stopped" if stopped else "dead"),
        cells_done=int(beat.get("cells_done") or 0),
        runs={str(r): len(c) for r, c in (runs or {}).items() if alive},
    )


def read_nodes(settings: Settings, now: float | None = None) -> list[NodeView]:
    """Every node that beat within NODE_TTL: the live ones first, then by name."""
    from crystallize_dist import constants as C
    from crystallize_dist.distributed.reclaim import all_nodes
    from crystallize_dist.distributed.store.redis_client import RedisClient

    now = time.time() if now is None else now
    redis = RedisClient(settings.broker_url, retries=0)
    try:
        redis.ping()  # a server that is not Redis, or does not answer, is one line soon
        with redis.errors():  # one line: cannot reach, refused credentials, not Redis
            beats = all_nodes(redis.r)
            raws = redis.r.mget([C.key_node(n) for n in beats]) if beats else []
    finally:
        redis.close()
    views = []
    for (name, beat), raw in zip(beats.items(), raws, strict=True):
        try:
            whole = json.loads(raw) if raw else {}
        except ValueError:
            whole = {}
        versions = whole.get("versions") if isinstance(whole, dict) else None
        clean = (
            {str(k): str(v) for k, v in versions.items() if isinstance(v, (str, int, float))}
            if isinstance(versions, dict)
            else {}
        )
        views.append(node_view(name, beat, clean, settings.heartbeat_grace, now))
    return sorted(views, key=lambda v: (v.state != "alive", v.node))
