"""Giving the work of dead workers to live ones.

A task message a worker has taken waits, unacknowledged, in kombu's ``unacked`` hash (with its
delivery time in ``unacked_index``) until the worker acknowledges it. Celery puts such a
message back on the queue only after the visibility timeout (an hour by default), which stays
as the backstop. Here a message is *orphaned* when it was delivered longer than the heartbeat
grace period ago and no live worker node holds it (each node's heartbeat lists the delivery
tags it holds; a node silent for longer than the grace period is dead). An orphaned message is
put back on its queue at once, marked redelivered, so the worker that takes it counts each
cell's attempt before running it; its cells keep their seeds. If the silent worker was alive
after all (a long pause, a healed partition), the first record of each cell wins and the other
is counted as a duplicate.

Any process may do this - every worker's heartbeat thread, and every submitter waiting for a
run - but one at a time (``KEY_REAPER``).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import redis

from crystallize_dist import constants as C
from crystallize_dist.config import Settings

_log = logging.getLogger("crystallize_dist.reclaim")
UNACKED = C.KOMBU_UNACKED
UNACKED_INDEX = C.KOMBU_UNACKED_INDEX


def parse_beat(raw: bytes | str | None) -> dict[str, Any] | None:
    """A node's heartbeat as stored, or None when it is missing or not one. Heartbeats are
    not signed (anyone who can write to Redis can forge one), so every field is checked for
    its shape and what does not fit is dropped: a forged beat can at worst keep a message
    from being reclaimed early (the visibility timeout still returns it) or show in
    ``status``, never break a reader."""
    try:
        beat = json.loads(raw) if raw else None
    except (ValueError, TypeError):
        return None
    if not isinstance(beat, dict):
        return None
    runs = beat.get("runs")
    held = beat.get("held")
    last = beat.get("last_beat")
    done = beat.get("cells_done")
    return {
        **{k: v for k, v in beat.items() if isinstance(v, (str, int, float, bool))},
        "last_beat": float(last) if isinstance(last, (int, float)) else None,
        "stopped": beat.get("stopped") is True,
        "held": [t for t in held if isinstance(t, str)] if isinstance(held, list) else [],
        "runs": {
            str(r): [c for c in cells if isinstance(c, str)]
            for r, cells in runs.items()
            if isinstance(cells, list)
        }
        if isinstance(runs, dict)
        else {},
        "cells_done": done if isinstance(done, int) else 0,
    }


def _beats(client: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, raw in zip(names, client.mget([C.key_node(n) for n in names]), strict=True):
        beat = parse_beat(raw)
        if beat is not None:
            out[name] = beat
    return out


def live_nodes(client: Any, grace: float, now: float | None = None) -> dict[str, dict[str, Any]]:
    """Worker nodes whose last heartbeat is at most ``grace`` seconds old: node -> its
    heartbeat (a node that said it stopped is not live)."""
    now = time.time() if now is None else now
    names = [
        n.decode(errors="replace") for n in client.zrangebyscore(C.KEY_NODES, now - grace, "+inf")
    ]
    beats = _beats(client, names) if names else {}
    return {name: beat for name, beat in beats.items() if not beat["stopped"]}


def all_nodes(client: Any) -> dict[str, dict[str, Any]]:
    """Every node that beat within NODE_TTL: node -> its last heartbeat."""
    names = [n.decode(errors="replace") for n in client.zrange(C.KEY_NODES, 0, -1)]
    return _beats(client, names) if names else {}


def _ours(payload: Any) -> bool:
    headers = payload.get("headers") if isinstance(payload, dict) else None
    return isinstance(headers, dict) and headers.get("task") == C.TASK_RUN_CELLS


def restore(client: Any, tag: str) -> bool:
    """Put the unacknowledged message ``tag`` back on its queue, marked redelivered and under
    a new delivery tag (so a late acknowledgement by its old holder cannot remove the new
    copy). False when it is gone already (acknowledged meanwhile) or not one of ours."""
    restored = False

    def move(pipe: Any) -> None:
        nonlocal restored
        raw = pipe.hget(UNACKED, tag)
        try:
            payload, _exchange, routing_key = json.loads(raw) if raw else (None, None, None)
        except (ValueError, TypeError):
            payload = routing_key = None
        pipe.multi()
        if payload is None or not _ours(payload) or not isinstance(routing_key, str):
            return  # leave what is not ours to kombu's own visibility timeout
        payload["headers"]["redelivered"] = True
        properties = payload.setdefault("properties", {})
        properties.setdefault("delivery_info", {})["redelivered"] = True
        properties["delivery_tag"] = uuid.uuid4().hex
        pipe.zrem(UNACKED_INDEX, tag)
        pipe.hdel(UNACKED, tag)
        pipe.rpush(routing_key, json.dumps(payload))  # BRPOP takes it next
        restored = True

    client.transaction(move, UNACKED)
    return restored


def reclaim_orphans(client: Any, settings: Settings, *, holder: str = "") -> list[str]:
    """Put back every orphaned message (see the module docstring); returns their old delivery
    tags. Does nothing while another process is at it."""
    grace = settings.heartbeat_grace
    if not client.set(C.KEY_REAPER, holder or "reaper", nx=True, ex=max(1, int(grace / 3))):
        return []
    try:
        now = time.time()
        old = [t.decode() for t in client.zrangebyscore(UNACKED_INDEX, "-inf", now - grace)]
        if not old:
            return []
        alive = live_nodes(client, grace, now)
        holding = {tag for beat in alive.values() for tag in beat.get("held", ())}
        restored = [tag for tag in old if tag not in holding and restore(client, tag)]
        if restored:
            _log.warning(
                "gave %d message(s) of silent workers (no heartbeat for %gs) back to the queue",
                len(restored),
                grace,
            )
        return restored
    except redis.WatchError:  # the message moved meanwhile: the next pass looks again
        return []
    finally:
        client.delete(C.KEY_REAPER)
