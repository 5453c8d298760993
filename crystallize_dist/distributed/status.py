"""Where a run stands: cells done, failed and pending per condition from the O(1) counters,
its state, and - for a run on workers - which workers are on it, alive or silent, and which
cells have no record and no task message left ("lost")."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from crystallize_dist.config import Settings
from crystallize_dist.distributed.canary import summary as canary_summary
from crystallize_dist.distributed.driver import driver_gone
from crystallize_dist.distributed.store import RunStore
from crystallize_dist.distributed.store.failure import failure_of
from crystallize_dist.engine.plan import RunPlan


@dataclass
class WorkerView:
    """One worker node as ``status`` shows it: its last heartbeat, the cells of the run it
    recorded and has in flight, and whether it is alive (beat within the grace period)."""

    node: str
    last_beat: float | None
    done: int
    in_flight: int
    alive: bool
    stopped: bool = False

    @property
    def state(self) -> str:
        if self.alive:
            return "alive"
        return "stopped" if self.stopped else "dead"

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "last_beat": self.last_beat,
            "done": self.done,
            "in_flight": self.in_flight,
            "state": self.state,
        }


@dataclass
class RunStatus:
    """Where a run stands, from its counters (O(1) in the number of cells)."""

    run_id: str
    experiment: str
    total: int
    per_condition: dict[str, dict[str, int]]
    attempts: int
    duplicates: int
    workers: list[str]
    elapsed: float
    eta: float | None
    cancelled: bool
    created: float
    interrupted: bool = False
    #: why the run could not go on: its store refused a write (see ``store/failure.py``)
    failure: str | None = None
    #: a ``--local`` run whose driver process is gone (see ``distributed/driver.py``)
    driver_gone: bool = False
    #: worker node -> the first line of the error it met loading the experiment
    load_errors: dict[str, str] = field(default_factory=dict)
    #: worker node -> cells of the run it recorded (from the counters)
    node_done: dict[str, int] = field(default_factory=dict)
    nodes: list[WorkerView] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return sum(c["ok"] for c in self.per_condition.values())

    @property
    def failed(self) -> int:
        return sum(c["error"] for c in self.per_condition.values())

    @property
    def pending(self) -> int:
        return self.total - self.done - self.failed

    @property
    def finished(self) -> bool:
        return self.pending <= 0

    @property
    def state(self) -> str:
        if self.cancelled:
            return "cancelled"
        if self.finished:
            return "finished"
        if self.failure:
            return "failed"
        if self.interrupted:
            return "interrupted"
        return "stopped" if self.driver_gone else "running"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "experiment": self.experiment,
            "state": self.state,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "pending": self.pending,
            "per_condition": self.per_condition,
            "attempts": self.attempts,
            "duplicates": self.duplicates,
            "workers": self.workers,
            "nodes": [n.to_dict() for n in self.nodes],
            "load_errors": self.load_errors,
            "elapsed": self.elapsed,
            "eta": self.eta,
            "cancelled": self.cancelled,
            "interrupted": self.interrupted,
            "failure": self.failure,
            "finished": self.finished,
            **self.extra,
        }


def run_status(store: RunStore, run_id: str, now: float | None = None) -> RunStatus:
    """The status of a run from its manifest, state and counters."""
    manifest = store.manifest(run_id)
    counters = store.counters(run_id)
    plan = RunPlan.from_dict(manifest["plan"])
    per: dict[str, dict[str, int]] = {}
    for cond in plan.conditions:
        ok = int(counters.get(f"ok:{cond}", 0))
        err = int(counters.get(f"error:{cond}", 0))
        per[cond] = {"ok": ok, "error": err, "pending": plan.replicates - ok - err}
    state = store.state(run_id)
    now = now or time.time()
    first = counters.get("first_at")
    last = counters.get("last_at")
    total = plan.n_cells
    finished_cells = sum(c["ok"] + c["error"] for c in per.values())
    cancelled = bool(state.get("cancelled"))
    interrupted = bool(state.get("interrupted"))
    failure = failure_of(state)
    gone = driver_gone(state.get("driver"))
    stopped = finished_cells >= total or cancelled or interrupted or bool(failure) or gone
    # a stopped run stopped at its last record; one with no cell started yet has been
    # waiting since it was submitted
    end = last if stopped and last else now
    start = first or float(manifest.get("created", 0)) or end
    elapsed = max(0.0, end - start)
    eta = None
    if first and 0 < finished_cells < total and not stopped:
        eta = elapsed / finished_cells * (total - finished_cells)
    workers = store.workers(run_id)
    extra: dict[str, Any] = {}
    drifted = {h: w.get("drift") for h, w in workers.items() if w.get("drift")}
    if drifted:
        extra["drift"] = drifted
    load_errors = state.get("load_errors")
    checked = canary_summary(manifest, state, None, run_id)
    if checked is not None:
        extra["canary"] = checked
    return RunStatus(
        run_id=run_id,
        experiment=manifest["experiment"].get("name") or manifest["experiment"].get("text", ""),
        total=total,
        per_condition=per,
        attempts=int(counters.get("attempts", 0)),
        duplicates=int(counters.get("duplicates", 0)),
        workers=sorted(workers),
        elapsed=elapsed,
        eta=eta,
        cancelled=cancelled,
        created=float(manifest.get("created", 0)),
        interrupted=interrupted,
        failure=failure,
        driver_gone=gone,
        load_errors=dict(load_errors) if isinstance(load_errors, dict) else {},
        node_done={
            k[len("node:") :]: int(v) for k, v in counters.items() if k.startswith("node:") and v
        },
        extra=extra,
    )


def lost_cells(store: RunStore, settings: Settings, run_id: str) -> list[str]:
    """Cells without a record and without a task message anywhere in the broker: nothing
    will run them until ``resume`` (or a waiting submitter sends them again). A message moving
    from the queue to a worker is briefly in neither place, so a cell can show as lost for an
    instant."""
    from crystallize_dist.distributed.broker import queued_cells
    from crystallize_dist.distributed.manifest import run_settings

    manifest = store.manifest(run_id)
    settings = run_settings(settings, manifest)  # look in the run's own queue
    plan = RunPlan.from_dict(manifest["plan"])
    keys = [f"{c.condition}:{c.replicate}" for c in plan.cells()]
    have = store.has_records(run_id, keys)
    pending = [k for k, done in zip(keys, have, strict=True) if not done]
    if not pending:
        return []
    queued = queued_cells(settings, run_id)
    # re-check records: a cell may have finished while the queue was being read
    unqueued = [k for k in pending if k not in queued]
    again = store.has_records(run_id, unqueued)
    return [k for k, done in zip(unqueued, again, strict=True) if not done]


def worker_views(
    status: RunStatus, beats: dict[str, dict[str, Any]], grace: float, now: float | None = None
) -> list[WorkerView]:
    """The workers of a run: every node that recorded one of its cells or holds one now,
    with its last heartbeat (``beats``: node -> heartbeat, see ``reclaim.all_nodes``)."""
    now = time.time() if now is None else now
    views = []
    for node in sorted(
        set(status.node_done)
        | {n for n, b in beats.items() if status.run_id in (b.get("runs") or {})}
    ):
        beat = beats.get(node) or {}
        last = beat.get("last_beat")
        stopped = bool(beat.get("stopped"))
        alive = isinstance(last, (int, float)) and now - last <= grace and not stopped
        in_flight = len((beat.get("runs") or {}).get(status.run_id, ())) if alive else 0
        views.append(
            WorkerView(node, last, status.node_done.get(node, 0), in_flight, alive, stopped)
        )
    return views


def full_status(
    store: RunStore,
    settings: Settings,
    run_id: str,
    *,
    lost: bool | None = None,
    local: bool = False,
) -> RunStatus:
    """``run_status``, and for a run on workers: its workers (``worker_views``; no ETA when
    none of them is alive) and ``extra["lost"]`` (see ``lost_cells``) for a run with pending
    cells that is not cancelled - when ``lost`` asks, or by default when the run's queue is
    small enough to scan (at most ``SCAN_LIMIT`` messages)."""
    from crystallize_dist.distributed.broker import SCAN_LIMIT, broker_client, queue_size
    from crystallize_dist.distributed.manifest import run_settings
    from crystallize_dist.distributed.reclaim import all_nodes

    st = run_status(store, run_id)
    if local:
        return st
    with broker_client(settings) as client:
        st.nodes = worker_views(st, all_nodes(client), settings.heartbeat_grace)
    if not any(n.alive for n in st.nodes):
        st.eta = None
    if st.pending <= 0 or st.cancelled or lost is False:
        return st
    if lost or queue_size(run_settings(settings, store.manifest(run_id))) <= SCAN_LIMIT:
        st.extra["lost"] = lost_cells(store, settings, run_id)
    return st
