"""What ``status --watch`` shows at each poll: the run's status, its throughput over the last
half minute, its workers with their last heartbeat, and its most recent cell errors.

Throughput and ETA come from the counters; the workers from the heartbeats (every
``heartbeat_interval``); the errors from the failed records, read again only when the
failed count grows and the run is small enough to scan (``LIVE_SCAN_LIMIT`` cells).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.status import RunStatus, worker_views
from crystallize_dist.distributed.store import RunStore
from crystallize_dist.errors import BrokerError, StoreError
from crystallize_dist.model.result import Result


@dataclass
class LiveView:
    """One frame of the live view."""

    status: RunStatus
    #: cells recorded per second over the last ``LIVE_RATE_WINDOW`` seconds (None: too soon)
    rate: float | None
    #: the latest failed cells, newest first: ``condition:replicate Type: message``
    errors: list[str] = field(default_factory=list)
    #: what the waiter said (no live worker, Redis unreachable, ...), latest last
    notices: list[str] = field(default_factory=list)


class LiveWatch:
    """Keeps what the live view needs between polls (see the module docstring)."""

    def __init__(self, store: RunStore, run_id: str, settings: Settings | None) -> None:
        self.store = store
        self.run_id = run_id
        self.settings = settings
        self.samples: deque[tuple[float, int]] = deque()
        self.errors: list[str] = []
        self.notices: deque[str] = deque(maxlen=C.LIVE_NOTICES)
        self._failed_seen = 0
        self._beats: dict[str, dict[str, Any]] = {}
        self._beats_at = 0.0

    def say(self, line: str) -> None:
        """A line from the waiter, shown under the view."""
        self.notices.append(line)

    def _rate(self, done: int, now: float) -> float | None:
        self.samples.append((now, done))
        while self.samples and now - self.samples[0][0] > C.LIVE_RATE_WINDOW:
            self.samples.popleft()
        first_at, first = self.samples[0]
        return (done - first) / (now - first_at) if now - first_at >= 1.0 else None

    def _read_errors(self, status: RunStatus) -> None:
        if status.failed == self._failed_seen or status.total > C.LIVE_SCAN_LIMIT:
            return
        self._failed_seen = status.failed
        failed = []
        for rec in self.store.iter_records(self.run_id, steps=False):
            if rec.get("status") == "ok":
                continue
            found, clock = rec.get("error"), rec.get("timing")
            err: dict[str, Any] = found if isinstance(found, dict) else {}
            timing: dict[str, Any] = clock if isinstance(clock, dict) else {}
            started = timing.get("started")
            when = float(started) if isinstance(started, (int, float)) else 0.0
            text = f"{rec.get('condition')}:{rec.get('replicate')} {err.get('type')}: "
            text += " ".join(str(err.get("message", "")).split())[:200]
            failed.append((when, text))
        self.errors = [text for _, text in sorted(failed, reverse=True)[: C.LIVE_ERRORS]]

    def _nodes(self, status: RunStatus, now: float) -> None:
        if self.settings is None:
            return
        if now - self._beats_at >= self.settings.heartbeat_interval:
            from crystallize_dist.distributed.broker import broker_client
            from crystallize_dist.distributed.reclaim import all_nodes

            self._beats_at = now
            try:
                with broker_client(self.settings) as client:
                    self._beats = all_nodes(client)
            except BrokerError:
                pass  # the waiter says when Redis cannot be reached
        status.nodes = worker_views(status, self._beats, self.settings.heartbeat_grace, now)
        if not any(n.alive for n in status.nodes):
            status.eta = None

    def frame(self, status: RunStatus) -> LiveView:
        """The view of ``status`` (with its workers and errors filled in)."""
        now = time.time()
        rate = self._rate(status.done + status.failed, now)
        self._nodes(status, now)
        try:
            self._read_errors(status)
        except StoreError:
            pass
        return LiveView(status, rate, list(self.errors), list(self.notices))


def ending(store: RunStore, run_id: str, status: RunStatus) -> Result:
    """What the end of ``status --watch`` needs to say how the run went (its failed cells
    in canonical order, its canary), as a Result without metrics: reading it writes no
    artifact file."""
    from crystallize_dist.engine.plan import RunPlan
    from crystallize_dist.model.result import ExperimentMetrics, TreatmentMetrics, error_from_dict

    failed: dict[tuple[Any, Any], dict[str, Any]] = {}
    if status.failed:
        for rec in store.iter_records(run_id, steps=False):
            if rec.get("status") != "ok":
                found = rec.get("error")
                failed[(rec.get("condition"), rec.get("replicate"))] = (
                    found if isinstance(found, dict) else {}
                )
    plan = RunPlan.from_dict(store.manifest(run_id)["plan"])
    errors: dict[str, BaseException] = {
        f"{c.condition}_rep_{c.replicate}": error_from_dict(failed[(c.condition, c.replicate)])
        for c in plan.cells()
        if (c.condition, c.replicate) in failed
    }
    canary = status.extra.get("canary")
    provenance = {"canary": canary} if canary else {}
    return Result(ExperimentMetrics(TreatmentMetrics(), {}), errors=errors, provenance=provenance)
