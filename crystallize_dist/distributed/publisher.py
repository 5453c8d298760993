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
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.messages import cell_message, task_id
from crystallize_dist.engine.plan import Cell
from crystallize_dist.errors import BrokerError
from crystallize_dist.urls import redact

#: messages per pipelined round trip.
CHUNK = 1000
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


class Envelopes:
    """Builds the run_cells messages of one run as kombu's Redis transport stores them.

    Every message of a run has the same shape, so the JSON is rendered once with marked
    holes and each message fills them in (a message is built several times faster than by
    ``json.dumps`` of a fresh dict). ``retries`` > 0 marks cells sent again (resume, a hard
    time limit): workers then count each cell's attempt before running it.
    """

    def __init__(
        self,
        settings: Settings,
        run_id: str,
        origin: str,
        retries: int = 0,
        kwargs: dict[str, Any] | None = None,
        suffix: str = "",
    ) -> None:
        self.settings = settings
        self.run_id = run_id
        self.tag_prefix = uuid.uuid4().hex
        self.count = 0
        self._templates: dict[int, str] = {}
        self._body_head = "[" + json.dumps([run_id])[:-1] + ","  # [["<run_id>",
        self._body_tail = "]," + json.dumps([kwargs or {}, _EMBED])[1:]  # '],{},{...}]'
        self.origin = origin
        self.retries = retries
        #: added to each task id (the canary's messages: ``canary.py``)
        self.suffix = suffix

    def _template(self, n: int) -> str:
        """The message for a task of ``n`` cells, with holes @ID@, @BODY@, @TAG@."""
        if n not in self._templates:
            soft, hard = self.settings.task_limits(n)
            message = {
                "body": "@BODY@",
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": {
                    "lang": "py",
                    "task": C.TASK_RUN_CELLS,
                    "id": "@ID@",
                    "shadow": None,
                    "eta": None,
                    "expires": None,
                    "group": None,
                    "group_index": None,
                    "retries": self.retries,
                    "timelimit": [hard, soft],
                    "root_id": "@ID@",
                    "parent_id": None,
                    "argsrepr": f"({self.run_id!r}, <{n} cells>)",
                    "kwargsrepr": "{}",
                    "origin": self.origin,
                    "ignore_result": True,
                    "replaced_task_nesting": 0,
                    "stamped_headers": None,
                    "stamps": {},
                },
                "properties": {
                    "correlation_id": "@ID@",
                    "reply_to": "",
                    "delivery_mode": 2,
                    "delivery_info": {"exchange": "", "routing_key": self.settings.queue},
                    "priority": 0,
                    "body_encoding": "base64",
                    "delivery_tag": "@TAG@",
                },
            }
            text = json.dumps(message, separators=(",", ":"))
            text = text.replace("{", "{{").replace("}", "}}")
            for hole, name in (
                ('"@ID@"', "{tid}"),
                ('"@BODY@"', '"{body}"'),
                ('"@TAG@"', '"{tag}"'),
            ):
                text = text.replace(hole, name)
            self._templates[n] = text
        return self._templates[n]

    def build(self, cells: Sequence[Cell]) -> bytes:
        """One message carrying ``cells``."""
        body = self._body_head + json.dumps([cell_message(c) for c in cells]) + self._body_tail
        self.count += 1
        return (
            self._template(len(cells))
            .format(
                tid=json.dumps(task_id(self.run_id, cells) + self.suffix),
                body=base64.b64encode(body.encode()).decode(),
                tag=f"{self.tag_prefix}.{self.count}",
            )
            .encode()
        )


def envelope(
    settings: Settings, run_id: str, cells: Sequence[Cell], origin: str, retries: int = 0
) -> bytes:
    """One run_cells message (see ``Envelopes``)."""
    return Envelopes(settings, run_id, origin, retries).build(cells)


def publish(
    settings: Settings,
    run_id: str,
    groups: Sequence[Sequence[Cell]],
    retries: int = 0,
    kwargs: dict[str, Any] | None = None,
    suffix: str = "",
) -> int:
    """LPUSH one message per group of cells to the run's queue; returns messages sent.
    ``kwargs`` and ``suffix`` (of the task ids) mark messages of another kind (the
    canary's)."""
    origin = f"gen{os.getpid()}@{socket.gethostname()}"
    envelopes = Envelopes(settings, run_id, origin, retries, kwargs, suffix)
    client = redis.Redis.from_url(settings.broker_url, socket_connect_timeout=5)
    try:
        for start in range(0, len(groups), CHUNK):
            pipe = client.pipeline(transaction=False)
            pipe.lpush(settings.queue, *(envelopes.build(g) for g in groups[start : start + CHUNK]))
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


def batches(cells: Iterable[Cell], size: int) -> list[list[Cell]]:
    """Cells grouped ``size`` at a time, in canonical order."""
    out: list[list[Cell]] = []
    for cell in cells:
        if not out or len(out[-1]) >= size:
            out.append([])
        out[-1].append(cell)
    return out


def enqueue(
    settings: Settings,
    run_id: str,
    cells: Sequence[Cell],
    cells_per_task: int = 1,
    *,
    again: bool = False,
) -> int:
    """Publish the cells as run_cells tasks, ``cells_per_task`` to a message, in pipelined
    round trips (see ``publish``); returns the number of messages sent. ``again`` marks
    cells sent before (resume, a killed task): workers count their attempts before running
    them, so a cell that kills its worker is stopped after ``max_attempts``."""
    return publish(
        settings, run_id, batches(cells, max(1, cells_per_task)), retries=1 if again else 0
    )
