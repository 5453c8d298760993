"""Publishing cell tasks fast: pre-built Celery messages pushed to Redis in pipelines.

``apply_async`` costs about half a millisecond of Python per message (kombu builds a new
client per publish), which caps a submit at 1,000-2,000 tasks/s. A run's messages differ
only in their cells, so this module builds each one directly - a Celery protocol-2 message
in kombu's Redis envelope, exactly what ``apply_async`` writes - and ``LPUSH``es them a
thousand per round trip. A stock Celery worker consumes them (every integration test does).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any

import redis

from crystallize_dist import constants as C
from crystallize_dist.config import Settings, redact
from crystallize_dist.core.plan import Cell
from crystallize_dist.dist.messages import cell_message, task_id
from crystallize_dist.errors import BrokerError

#: messages per pipelined round trip.
CHUNK = 1000
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def envelope(settings: Settings, run_id: str, cells: Sequence[Cell], origin: str,
             retries: int = 0) -> bytes:
    """One run_cells message as kombu's Redis transport stores it in the queue list.

    ``retries`` > 0 marks cells sent again (resume, a hard time limit): workers then count
    each cell's attempt before running it, never while it runs."""
    tid = task_id(run_id, cells)
    args = [run_id, [cell_message(c) for c in cells]]
    soft, hard = settings.task_limits(len(cells))
    body = json.dumps([args, {}, _EMBED]).encode()
    message = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": C.TASK_RUN_CELLS, "id": tid, "shadow": None, "eta": None,
            "expires": None, "group": None, "group_index": None, "retries": retries,
            "timelimit": [hard, soft], "root_id": tid, "parent_id": None,
            "argsrepr": f"({run_id!r}, <{len(cells)} cells>)", "kwargsrepr": "{}",
            "origin": origin, "ignore_result": True, "replaced_task_nesting": 0,
            "stamped_headers": None, "stamps": {},
        },
        "properties": {
            "correlation_id": tid, "reply_to": "", "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": settings.queue},
            "priority": 0, "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(message, separators=(",", ":")).encode()


def publish(settings: Settings, run_id: str, groups: Sequence[Sequence[Cell]],
            retries: int = 0) -> int:
    """LPUSH one message per group of cells to the run's queue; returns messages sent."""
    origin = f"gen{os.getpid()}@{socket.gethostname()}"
    client = redis.Redis.from_url(settings.broker_url, socket_connect_timeout=5)
    try:
        for start in range(0, len(groups), CHUNK):
            pipe = client.pipeline(transaction=False)
            pipe.lpush(settings.queue, *(envelope(settings, run_id, g, origin, retries)
                                         for g in groups[start:start + CHUNK]))
            pipe.execute()
    except redis.RedisError as exc:
        raise BrokerError(f"cannot publish to {redact(settings.broker_url)}: {exc}") from None
    finally:
        client.close()
    return len(groups)


def message_cells(raw: bytes) -> tuple[str, list[Any]]:
    """``(task id, cells)`` of a queued message (for tests and the lost-cell check)."""
    data = json.loads(raw)
    envelope_ = data[0] if isinstance(data, list) else data
    body = base64.b64decode(envelope_["body"])
    return envelope_["headers"]["id"], json.loads(body)[0][1]
