"""CellRunner: the worker side of a run, shared by Celery workers and the ``--local`` pool.

For each batch of cells it validates the message against the manifest, readies the run's
experiment once per process (see ``preparing``), skips cells that already have a record
(counting the duplicate delivery), counts attempts, records a cell that keeps killing its
worker as failed after ``max_attempts``, runs the rest on the engine's cell path and writes
each record first-write-wins. With a secret it signs each record it writes, and its
stamp (``record_signatures``, ``signing``).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from crystallize_dist.config import Settings
from crystallize_dist.distributed.artifacts import ship
from crystallize_dist.distributed.cell_records import error_record, quick, storable
from crystallize_dist.distributed.deadline import cell_deadline
from crystallize_dist.distributed.messages import check_cells
from crystallize_dist.distributed.preparing import Prepared, Preparer, drift, worker_environment
from crystallize_dist.distributed.record_signatures import sign_record
from crystallize_dist.distributed.signing import sign_stamp
from crystallize_dist.distributed.store.base import CellStart, RunStore
from crystallize_dist.distributed.store.records import Encoded, cell_key
from crystallize_dist.engine.cell import execute_cell
from crystallize_dist.engine.plan import Cell, RunPlan
from crystallize_dist.engine.records import STATUS_OK
from crystallize_dist.engine.runspec import RunSpec
from crystallize_dist.model.experiment import Experiment

_log = logging.getLogger("crystallize_dist.worker")
#: seconds a worker waits before it hands back cells of a run it already failed to load
HAND_BACK_PAUSE = 0.5


class CellRunner:
    """Runs cells of any run against a store; one instance per worker process."""

    def __init__(
        self,
        store: RunStore,
        settings: Settings,
        node: str | None = None,
        loader: Callable[[Mapping[str, Any]], Experiment] | None = None,
        *,
        requeue: bool = False,
        ship_artifacts: bool = False,
        require_bundle: bool = False,
    ) -> None:
        self.store = store
        self.settings = settings
        #: hand cells back (``counts["requeue"]``) when this worker cannot load the
        #: experiment, so a worker with the right code and packages can take them; only
        #: after a cell's ``max_attempts`` is the failure recorded (Celery workers)
        self.requeue = requeue
        #: put artifact files into the store for the submitter's machine (Celery workers)
        self.ship_artifacts = ship_artifacts
        # "name@host" as Celery names workers; the host part says which machine ran a cell
        self.node = node or f"local@{socket.gethostname()}"
        self.hostname = self.node.rpartition("@")[2] or socket.gethostname()
        self.env = worker_environment()
        # with a secret, a Celery worker runs a run's code only from its verified bundle or
        # an installed module (the --local pool runs the submitter's own files)
        self.preparer = Preparer(store, settings, loader, self.node, require_bundle=require_bundle)
        self._manifests: dict[str, dict[str, Any]] = {}
        self._plans: dict[str, RunPlan] = {}
        self._noted: set[str] = set()
        # where a cell ran; this worker's versions are stored once per run (note_worker)
        self._stamp = {"host": self.hostname, "node": self.node}

    # -- caches ---------------------------------------------------------------------------------
    def manifest(self, run_id: str) -> dict[str, Any]:
        if run_id not in self._manifests:
            self._manifests[run_id] = self.store.manifest(run_id)
        return self._manifests[run_id]

    def plan(self, run_id: str) -> RunPlan:
        if run_id not in self._plans:
            self._plans[run_id] = RunPlan.from_dict(self.manifest(run_id)["plan"])
        return self._plans[run_id]

    def cells(self, run_id: str, raw_cells: list[Any]) -> list[Cell]:
        """A message's cells, checked against the run's plan and the manifest's seed table."""
        manifest = self.manifest(run_id)
        return check_cells(raw_cells, self.plan(run_id), manifest.get("seeds") or [], run_id)

    # -- the work -------------------------------------------------------------------------------
    def _execute(self, spec: RunSpec, cell: Cell, options: Mapping[str, Any]) -> dict[str, Any]:
        """Run a cell under its time limit, re-running it up to ``retries`` times while it
        raises; the last record is kept with ``tries`` set."""
        retries = int(options.get("retries", self.settings.retries))
        limit = float(options.get("cell_time_limit", self.settings.cell_time_limit))
        for tries in range(1, retries + 2):
            with cell_deadline(limit):
                record = execute_cell(spec, cell)
            record["tries"] = tries
            if record["status"] == STATUS_OK:
                break
            error = record["error"]
            if (error.get("original") or {}).get("type") == "CellTimeoutError":
                # say what happened, not which step happened to be running
                error["type"], error["message"] = "CellTimeoutError", error["original"]["message"]
                break  # a cell that ran out of time is not retried
        return record

    def _encode(self, run_id: str, record: dict[str, Any], cell: Cell) -> Encoded:
        encoded = storable(record, cell, self.settings.max_record_bytes)
        secret = self.settings.secret
        return sign_record(encoded, secret, run_id) if secret else encoded

    def record_failure(self, run_id: str, cells: list[Cell], cause: str) -> None:
        """Record ``cells`` as failed outside experiment code (InfrastructureError): a message
        that could not be run nor sent again leaves its cause, never nothing."""
        for cell in cells:
            record = error_record(cell, "InfrastructureError", cause, worker=dict(self._stamp))
            self.store.put_record(run_id, self._encode(run_id, record, cell))

    def unfinished(self, run_id: str, raw_cells: list[Any]) -> list[Cell]:
        """The cells of a message that have no record (after its task was killed)."""
        cells = self.cells(run_id, raw_cells)
        have = self.store.has_records(run_id, [cell_key(c.condition, c.replicate) for c in cells])
        return [c for c, done in zip(cells, have, strict=True) if not done]

    def run(
        self, run_id: str, raw_cells: list[Any], *, speculative: bool = False
    ) -> dict[str, Any]:
        """Run one message's cells; returns counts of what happened to them.

        One round trip per cell: each cell's record is written together with the start of
        the next (``RunStore.advance``); a cell that already has a record, or belongs to a
        cancelled run, does not start. ``speculative`` (a first delivery, never a
        redelivered or resent message: a cell that kills its process must have its attempt
        counted before it runs again) lets a quick cell run before its start is counted -
        only once this process has seen the run's cells take under QUICK_CELL_SECONDS, so a
        cancel never waits for a slow one. A one-cell message then starts and records its
        cell together after it ran (``RunStore.start_and_put``: the record is dropped if the
        start says the cell must not run); a batch sends its first start before running
        that cell and reads the answer after it.
        """
        manifest = self.manifest(run_id)
        cells = self.cells(run_id, raw_cells)
        counts: dict[str, Any] = {
            "ran": 0,
            "duplicates": 0,
            "lost": 0,
            "cancelled": 0,
            "gone": 0,
            "requeue": [],
        }
        keys = [cell_key(c.condition, c.replicate) for c in cells]
        ready = self.preparer.prepare(run_id, manifest, recheck=not speculative)
        if self.requeue and ready.spec is None and not ready.final:
            return self._hand_back(run_id, manifest, cells, counts, ready)
        record: dict[str, Any] | None = None
        early = speculative and ready.quick  # a slow cell waits for its start: cancel stops it
        if early and len(cells) == 1:
            record = self._cell_record(run_id, manifest, cells[0], None)
            ready.quick = quick(record)
            _, start = self.store.start_and_put(
                run_id, self._encode(run_id, record, cells[0]), record["timing"]["started"]
            )
            self._tally(counts, start, record)
            return counts
        if early:
            answer = self.store.start_cell_soon(run_id, keys[0])
            record = self._cell_record(run_id, manifest, cells[0], None)
            ready.quick = quick(record)
            start = answer()
        else:
            start = self.store.start_cell(run_id, keys[0])
        for i, cell in enumerate(cells):
            if start.gone:  # deleted, or its keys expired: nothing more to do for it
                counts["gone"] = len(cells) - i
                break
            if start.recorded or start.cancelled:
                record = None
            elif record is None:
                record = self._cell_record(run_id, manifest, cell, start.attempt)
                ready.quick = quick(record)
            self._tally(counts, start, record)
            following = keys[i + 1] if i + 1 < len(keys) else None
            if record is None and following is None:
                break
            encoded = None if record is None else self._encode(run_id, record, cell)
            _, next_start = self.store.advance(run_id, encoded, following)
            start = next_start or start
            record = None
        return counts

    @staticmethod
    def _tally(counts: dict[str, Any], start: CellStart, record: Mapping[str, Any] | None) -> None:
        """Count what became of a started cell: a duplicate, cancelled, run or lost."""
        if start.recorded:
            counts["duplicates"] += 1
        elif start.cancelled:  # no new cell starts once a run is cancelled
            counts["cancelled"] += 1
        elif record is not None:
            lost = record["error"] and record["error"]["type"] == "WorkerLostError"
            counts["lost" if lost else "ran"] += 1

    def _hand_back(
        self,
        run_id: str,
        manifest: Mapping[str, Any],
        cells: list[Cell],
        counts: dict[str, Any],
        ready: Prepared,
    ) -> dict[str, Any]:
        """This worker cannot load the experiment: hand the cells back for another worker
        (their attempts are not counted). Once ``max_attempts`` loads of the run have failed
        and no worker has run one of its cells, the cells are recorded as failed with the
        load error instead, so a run that no worker can load ends instead of circling."""
        limit = int(manifest.get("options", {}).get("max_attempts", self.settings.max_attempts))
        loaded_elsewhere = bool(self.store.counters(run_id).get("ok"))
        if ready.failed_loads < limit or loaded_elsewhere:
            time.sleep(HAND_BACK_PAUSE)  # another worker may take them; this one must not spin
            counts["requeue"] = list(cells)
            return counts
        for cell in cells:
            start = self.store.start_cell(run_id, cell.key)
            if start.recorded:
                counts["duplicates"] += 1
            elif start.cancelled or start.gone:
                counts["cancelled"] += 1
            else:
                record = self._cell_record(run_id, manifest, cell, None)
                self.store.put_record(run_id, self._encode(run_id, record, cell))
                counts["lost"] += 1
        return counts

    def _cell_record(
        self, run_id: str, manifest: Mapping[str, Any], cell: Cell, attempt: int | None
    ) -> dict[str, Any]:
        """The record of a started cell: run it, or say why it cannot run. ``attempt`` is
        None while a speculative start is still on its way."""
        if run_id not in self._noted:
            info = {**self.env, "host": self.hostname, "drift": drift(manifest, self.env)}
            stamp = sign_stamp(info, self.settings.secret, run_id, self.node)
            self.store.note_worker(run_id, self.node, stamp)
            self._noted.add(run_id)
        options = manifest.get("options", {})
        limit = int(options.get("max_attempts", self.settings.max_attempts))
        moved = drift(manifest, self.env)
        prepared = self.preparer.prepare(run_id, manifest)
        if attempt is not None and attempt > limit:
            record = error_record(
                cell,
                "WorkerLostError",
                f"worker lost: cell {cell.key} was started {attempt - 1} counted times and "
                f"never finished - its process died or was killed at the hard time limit "
                f"({self.settings.task_limits()[1]:g}s) each time (limit {limit}); "
                "recorded as failed",
            )
        elif prepared.spec is None:
            assert prepared.failure is not None
            record = error_record(cell, *prepared.failure)
        elif moved and options.get("drift_policy", "warn") == "refuse":
            record = error_record(
                cell,
                "EnvironmentDriftError",
                "worker environment differs from the submitter's: "
                + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in moved.items()),
            )
        else:
            record = self._execute(prepared.spec, cell, options)
        record["worker"] = {**record.get("worker", {}), **self._stamp}
        if self.ship_artifacts and record.get("artifacts"):
            ship(self.store, record, self.settings.max_record_bytes)
        if moved:
            record["drift"] = moved
        return record
