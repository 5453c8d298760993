"""Looking into the broker: which cells of a run still have a task message.

A cell without a record is *lost* when no message for it is waiting in the queue or held
unacknowledged by a worker (kombu's ``unacked`` hash) - e.g. after Redis restarted without
persistence. ``resume`` re-enqueues lost cells with their original seeds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.publisher import message_cells
from crystallize_dist.errors import BrokerError
from crystallize_dist.urls import redact

UNACKED_KEY = C.KOMBU_UNACKED
#: queues longer than this are not scanned by ``status`` unless asked (``--lost``).
SCAN_LIMIT = 20_000
_PAGE = 1000


def _raw_messages(client: Any, queue: str) -> Iterator[bytes]:
    length = int(client.llen(queue))
    for start in range(0, length, _PAGE):
        yield from client.lrange(queue, start, start + _PAGE - 1)
    for _, value in client.hscan_iter(UNACKED_KEY, count=_PAGE):
        yield value


@contextmanager
def broker_client(settings: Settings) -> Iterator[Any]:
    """A client of the broker, closed after use; Redis errors become one-line BrokerErrors."""
    client = redis.Redis.from_url(settings.broker_url, socket_connect_timeout=5)
    try:
        yield client
    except redis.RedisError as exc:
        raise BrokerError(
            f"cannot read the queue at {redact(settings.broker_url)}: {exc}"
        ) from None
    finally:
        client.close()


def queue_size(settings: Settings) -> int:
    """Messages waiting plus messages held unacknowledged (O(1))."""
    with broker_client(settings) as client:
        return int(client.llen(settings.queue)) + int(client.hlen(UNACKED_KEY))


def queued_cells(settings: Settings, run_id: str, *, canary: bool = False) -> set[str]:
    """Cell keys of ``run_id`` that have a task message in the queue or unacked (with
    ``canary``: a message of the determinism canary, whose task id ends in
    ``CANARY_TASK_SUFFIX``; without: an ordinary one)."""
    marker = f'"{run_id}:'.encode()
    found: set[str] = set()
    with broker_client(settings) as client:
        for raw in _raw_messages(client, settings.queue):
            if marker in raw:
                try:
                    tid, cells = message_cells(raw)
                except (ValueError, KeyError, IndexError, TypeError):
                    continue  # not one of our messages
                if str(tid).endswith(C.CANARY_TASK_SUFFIX) == canary:
                    found.update(f"{c[0]}:{c[1]}" for c in cells)
    return found


def _task_id(raw: bytes) -> str | None:
    """The task id of a queued message, or None when it is not one of ours."""
    try:
        return message_cells(raw)[0]
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def drop_messages(settings: Settings, run_id: str) -> int:
    """Remove every task message of ``run_id`` from its queue and from the messages workers
    hold unacknowledged; returns how many were removed."""
    prefix = f"{run_id}:"
    removed = 0
    with broker_client(settings) as client:
        queued = [
            raw
            for start in range(0, int(client.llen(settings.queue)), _PAGE)
            for raw in client.lrange(settings.queue, start, start + _PAGE - 1)
            if (_task_id(raw) or "").startswith(prefix)
        ]
        for raw in queued:
            removed += int(client.lrem(settings.queue, 1, raw))
        for tag, value in client.hscan_iter(UNACKED_KEY, count=_PAGE):
            try:
                task = json.loads(value)[0]["headers"]["id"]
            except (ValueError, KeyError, IndexError, TypeError):
                continue
            if isinstance(task, str) and task.startswith(prefix):
                removed += int(client.hdel(UNACKED_KEY, tag))
                client.zrem(C.KOMBU_UNACKED_INDEX, tag)
    return removed
