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
from crystallize_dist.distributed.ahead import RecordBuffer, tally
from crystallize_dist.distributed.artifact_store import open_artifact_store
from crystallize_dist.distributed.artifacts import ship
from crystallize_dist.distributed.cell_records import error_record, quick, storable
from crystallize_dist.distributed.deadline import cell_deadline
from crystallize_dist.distributed.messages import check_cells
from crystallize_dist.distributed.preparing import Prepared, Preparer, drift, worker_environment
from crystallize_dist.distributed.record_signatures import sign_record
from crystallize_dist.distributed.signing import sign_stamp
from crystallize_dist.distributed.store.base import RunStore
from crystallize_dist.distributed.store.compact import RecordTemplate
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
        self.artifact_store = (
            open_artifact_store(settings.artifact_store) if ship_artifacts else None
        )
        # "name@host" as Celery names workers; the host part says which machine ran a cell
        self.node = node or f"local@{socket.gethostname()}"
        self.hostname = self.node.rpartition("@")[2] or socket.gethostname()
        self.env = worker_environment()
        # with a secret, a Celery worker runs a run's code only from its verified bundle or
        # an installed module (the --local pool runs the submitter's own files)
        self.preparer = Preparer(store, settings, loader, self.node, require_bundle=require_bundle)
        self._manifests: dict[str, dict[str, Any]] = {}
        self._plans: dict[str, RunPlan] = {}
        self._templates: dict[str, RecordTemplate] = {}
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
        return check_cells(raw_cells, self.plan(run_id), self.template(run_id).seeds, run_id)

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

    def template(self, run_id: str) -> RecordTemplate:
        """What the run's records share (their compact form leaves it out)."""
        if run_id not in self._templates:
            self._templates[run_id] = RecordTemplate.of(self.manifest(run_id))
        return self._templates[run_id]

    def _encode(self, run_id: str, record: dict[str, Any], cell: Cell) -> Encoded:
        encoded = storable(record, cell, self.settings.max_record_bytes, self.template(run_id))
        secret = self.settings.secret
        return sign_record(encoded, secret, run_id) if secret else encoded

    def record_failure(self, run_id: str, cells: list[Cell], cause: str) -> None:
        """Record ``cells`` as failed outside experiment code (InfrastructureError): a message
        that could not be run nor sent again leaves its cause, never nothing."""
        stamp = self._stamp
        records = [
            self._encode(
                run_id, error_record(cell, "InfrastructureError", cause, worker=stamp), cell
            )
            for cell in cells
        ]
        self.store.put_records(run_id, records)

    def unfinished(self, run_id: str, raw_cells: list[Any]) -> list[Cell]:
        """The cells of a message that have no record (after its task was killed)."""
        cells = self.cells(run_id, raw_cells)
        have = self.store.has_records(run_id, [cell_key(c.condition, c.replicate) for c in cells])
        return [c for c, done in zip(cells, have, strict=True) if not done]

    def run(
        self,
        run_id: str,
        raw_cells: list[Any],
        *,
        speculative: bool = False,
        hand_over: list[Encoded] | None = None,
    ) -> dict[str, Any]:
        """Run one message's cells; returns counts of what happened to them.

        A cell's start (``RunStore.advance``: its attempt counted, unless it already has a
        record or the run is cancelled - then it does not run) is normally counted before
        it runs, and sent together with the record of the cell before it: one round trip
        per cell. ``speculative`` (a first delivery, never a redelivered or resent message:
        a cell that kills its process must have its attempt counted before it runs again)
        lets quick cells run ahead of their starts - only once this process has seen the
        run's cells take under QUICK_CELL_SECONDS, so a cancel never waits for a slow one -
        and their records are written together, one round trip per flush (``ahead``).
        With ``hand_over`` those records are put in that list instead, for a writer in
        another process (``local``), and the run stops at the first flush due by time:
        ``counts["handled"]`` says how many of the cells it ran or started.
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
        ready = self.preparer.prepare(run_id, manifest, recheck=not speculative)
        if self.requeue and ready.spec is None and not ready.final:
            return self._hand_back(run_id, manifest, cells, counts, ready)
        ahead = RecordBuffer(self.store, run_id, counts, hand_over)
        pending: Encoded | None = None  # a started cell's record, sent with the next start
        for i, cell in enumerate(cells):
            if speculative and ready.quick and not ahead.cancelled:
                if pending is not None:
                    self.store.advance(run_id, pending, None)
                    pending = None
                record = self._cell_record(run_id, manifest, cell, None)
                ready.quick = quick(record)
                ahead.add(self._encode(run_id, record, cell))
                if ahead.due() and hand_over is not None:  # the writer takes them now
                    ahead.flush()
                    counts["handled"] = i + 1
                    return counts
                if ahead.due() or not ready.quick:
                    ahead.flush()
            else:
                ahead.flush()
                _, start = self.store.advance(run_id, pending, cell.key)
                pending = None
                assert start is not None
                if start.gone:
                    ahead.gone = True
                    counts["gone"] += 1
                elif not (start.recorded or start.cancelled):
                    record = self._cell_record(run_id, manifest, cell, start.attempt)
                    ready.quick = quick(record)
                    pending = self._encode(run_id, record, cell)
                tally(counts, start, pending)
            if ahead.gone:  # deleted, or its keys expired: nothing more to do for it
                counts["gone"] += len(cells) - i - 1
                return counts
        ahead.flush()
        if pending is not None:
            self.store.advance(run_id, pending, None)
        counts["handled"] = len(cells)
        return counts

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
            number = self.store.node_number(run_id, self.node)
            info = {**self.env, "host": self.hostname, "drift": drift(manifest, self.env)}
            stamp = sign_stamp({**info, "id": number}, self.settings.secret, run_id, self.node)
            self.store.note_worker(run_id, self.node, stamp)
            self._templates[run_id] = self.template(run_id).numbered(self.node, number)
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
            ship(self.store, record, self.settings.max_record_bytes, self.artifact_store)
        if moved:
            record["drift"] = moved
        return record
