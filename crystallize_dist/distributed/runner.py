"""CellRunner: the worker side of a run, shared by Celery workers and the ``--local`` pool.

For each batch of cells it validates the message against the manifest, loads the experiment
by reference once per process (cached by fingerprint), skips cells that already have a
record (counting the duplicate delivery), counts attempts, records a cell that keeps killing
its worker as failed after ``max_attempts``, runs the rest with ``run_cell`` and writes each
record first-write-wins.
"""

from __future__ import annotations

import atexit
import copy
import logging
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from crystallize_dist.config import Settings
from crystallize_dist.core.canonical import dumps
from crystallize_dist.core.cell import STATUS_ERROR, STATUS_OK, run_cell
from crystallize_dist.core.environment import versions
from crystallize_dist.core.experiment import Experiment
from crystallize_dist.core.loading import ExperimentRef, load_ref
from crystallize_dist.core.plan import Cell, RunPlan
from crystallize_dist.distributed.artifacts import for_run, ship
from crystallize_dist.distributed.deadline import cell_deadline
from crystallize_dist.distributed.messages import check_cells
from crystallize_dist.distributed.store.base import CellStart, Encoded, RunStore, cell_key, encode
from crystallize_dist.errors import CodeMismatchError

_log = logging.getLogger("crystallize_dist.worker")
#: runs whose readied experiment a worker process keeps.
MAX_PREPARED_RUNS = 16


def error_record(cell: Cell, error_type: str, message: str, **extra: Any) -> dict[str, Any]:
    """A failed-cell record for errors raised outside experiment code."""
    return {
        "condition": cell.condition,
        "replicate": cell.replicate,
        "seed": cell.seed,
        "status": STATUS_ERROR,
        "metrics": {},
        "error": {"type": error_type, "message": message, "traceback": ""},
        "steps": [],
        "seeded": [],
        "artifacts": [],
        "timing": {"started": time.time(), "duration": 0.0},
        **extra,
    }


def worker_environment() -> dict[str, Any]:
    """Versions of this worker process, compared with the manifest by the drift guard."""
    env: dict[str, Any] = dict(versions())
    try:
        import celery

        env["celery"] = celery.__version__
    except ImportError:  # pragma: no cover - celery is a dependency
        env["celery"] = None
    return env


def drift(manifest: Mapping[str, Any], here: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{package: [submitted, here]}`` for each of python / numpy / crystallize_dist that
    differs between the submitter and this worker."""
    submitted = manifest.get("submitter", {})
    return {
        key: [submitted.get(key), here.get(key)]
        for key in ("python", "numpy", "crystallize_dist")
        if submitted.get(key) is not None and submitted.get(key) != here.get(key)
    }


#: a cell this quick may run while its start is on its way (see CellRunner.run); a slower
#: one waits for it, so a cancel stops it before it runs
QUICK_CELL_SECONDS = 0.05


def _quick(record: Mapping[str, Any]) -> bool:
    duration = (record.get("timing") or {}).get("duration")
    return isinstance(duration, (int, float)) and duration < QUICK_CELL_SECONDS


class _Prepared:
    """An experiment readied for one run in this process (or why it could not be)."""

    def __init__(
        self,
        experiment: Experiment | None,
        failure: tuple[str, str] | None,
        fingerprint: str | None = None,
    ) -> None:
        self.experiment = experiment
        self.failure = failure
        self.fingerprint = fingerprint
        #: the last cell this process ran for the run took under QUICK_CELL_SECONDS
        self.quick = False


class CellRunner:
    """Runs cells of any run against a store; one instance per worker process."""

    def __init__(
        self,
        store: RunStore,
        settings: Settings,
        node: str | None = None,
        loader: Any = None,
        *,
        requeue: bool = False,
        ship_artifacts: bool = False,
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
        self._loader = loader or self._load
        self._manifests: dict[str, dict[str, Any]] = {}
        self._plans: dict[str, RunPlan] = {}
        self._experiments: dict[tuple[str, str], Experiment] = {}
        self._prepared: dict[str, _Prepared] = {}
        self._noted: set[str] = set()
        self._lock = threading.Lock()
        self._torn_down: set[int] = set()
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

    def _load(self, manifest: Mapping[str, Any]) -> Experiment:
        from crystallize_dist.distributed.bundle import ensure_code

        ref = ExperimentRef.from_dict(manifest["experiment"]["ref"])
        ref = ensure_code(ref, manifest, self.store, self.settings)
        return load_ref(ref)

    def _prepare(
        self, run_id: str, manifest: Mapping[str, Any], *, recheck: bool = False
    ) -> _Prepared:
        """The experiment readied for ``run_id`` (cached per run). ``recheck`` (a resent or
        redelivered message) looks again at the run's state: after ``resume --allow-drift``
        a warm worker must switch to the code it was resumed with."""
        with self._lock:  # threads pool: one thread loads, the others wait for it
            cached = self._prepared.get(run_id)
            if cached is not None and recheck:
                drift_ok = self.store.state(run_id).get("allow_drift")
                wanted = drift_ok.get("resumed_with") if isinstance(drift_ok, dict) else None
                if wanted and wanted != cached.fingerprint:
                    cached = None
            return cached or self._prepare_locked(run_id, manifest)

    def _prepare_locked(self, run_id: str, manifest: Mapping[str, Any]) -> _Prepared:
        info = manifest["experiment"]
        try:
            allowed = {info["fingerprint"]}
            drift_ok = self.store.state(run_id).get("allow_drift")
            if isinstance(drift_ok, dict):  # resume --allow-drift shipped newer code
                allowed = {drift_ok.get("resumed_with")}
                if drift_ok.get("bundle"):
                    options = {**manifest.get("options", {}), "bundle": drift_ok["bundle"]}
                    manifest = {**manifest, "options": options}
            key = (str(info["ref"]), min(allowed))
            base = self._experiments.get(key)
            if base is None:
                base = self._loader(manifest)
                found = base.fingerprint()
                if found not in allowed:
                    raise CodeMismatchError(
                        f"this worker's code differs from what was submitted: experiment "
                        f"{info.get('text') or info['ref']} has fingerprint {found[:12]} "
                        f"here but {info['fingerprint'][:12]} in the manifest; deploy the "
                        "submitted code (or resubmit)"
                    )
                self._experiments[key] = base
            prepared = _Prepared(self._for_run(base, manifest), None, min(allowed))
        except Exception as exc:
            _log.error("run %s: cannot prepare experiment: %s", run_id, exc)
            return _Prepared(None, (type(exc).__name__, str(exc)))  # not cached: next try
        self._prepared[run_id] = prepared
        while len(self._prepared) > MAX_PREPARED_RUNS:  # a long-lived worker sees many runs
            self._prepared.pop(next(iter(self._prepared)))
        return prepared

    def _for_run(self, base: Experiment, manifest: Mapping[str, Any]) -> Experiment:
        """A shallow copy of the experiment holding this run's plan (runs never share one)."""
        plan = RunPlan.from_dict(manifest["plan"])
        exp = copy.copy(base)
        by_name = {t.name: t for t in base.treatments}
        missing = [n for n in plan.treatments if n not in by_name]
        if missing:
            raise CodeMismatchError(f"this worker's experiment has no treatment {missing[0]!r}")
        spec = exp.resolve(
            treatments=[by_name[n] for n in plan.treatments]
            + [t for t in base.treatments if t.name == "baseline"],
            hypotheses=[],
            replicates=plan.replicates,
            seed=plan.master_seed,
            strategy="rerun",
        )
        spec.plan = plan  # the manifest's plan is the truth: seeds are never re-derived
        for_run(exp, manifest["experiment"].get("artifacts"))
        exp._active = spec.ready(exp)
        exp._assign_id()
        for step in exp.pipeline.steps:
            step.setup(exp._setup_ctx)
            if id(step) not in self._torn_down:  # steps are shared by a base's run copies
                self._torn_down.add(id(step))
                atexit.register(step.teardown, exp._setup_ctx)
        return exp

    # -- the work -------------------------------------------------------------------------------
    def _execute(
        self, experiment: Experiment, cell: Cell, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Run a cell under its time limit, re-running it up to ``retries`` times while it
        raises; the last record is kept with ``tries`` set."""
        retries = int(options.get("retries", self.settings.retries))
        limit = float(options.get("cell_time_limit", self.settings.cell_time_limit))
        for tries in range(1, retries + 2):
            with cell_deadline(limit):
                record = run_cell(experiment, cell)
            record["tries"] = tries
            if record["status"] == STATUS_OK:
                break
            error = record["error"]
            if (error.get("original") or {}).get("type") == "CellTimeoutError":
                # say what happened, not which step happened to be running
                error["type"], error["message"] = "CellTimeoutError", error["original"]["message"]
                break  # a cell that ran out of time is not retried
        return record

    def _encode(self, record: dict[str, Any], cell: Cell) -> Encoded:
        """The record as JSON, or - when it cannot be written or is too big - an error
        record that says why (a cell is never lost to its record)."""
        try:
            encoded = encode(record)
            encoded.text.encode()  # a lone surrogate in a string cannot be stored as UTF-8
        except (ValueError, TypeError) as exc:
            return encode(
                error_record(
                    cell,
                    "RecordEncodingError",
                    f"cell record cannot be written as JSON: {exc}",
                    worker=record.get("worker", {}),
                )
            )
        text = encoded.text
        if len(text) <= self.settings.max_record_bytes:
            return encoded
        big = max(
            record.get("metrics", {}).items(), key=lambda kv: len(dumps(kv[1])), default=("?", None)
        )[0]
        return encode(
            error_record(
                cell,
                "RecordTooLargeError",
                f"cell record is {len(text) / 1e6:.1f} MB, over the "
                f"{self.settings.max_record_bytes / 1e6:.1f} MB limit (largest metric: '{big}'); "
                "record summaries, write big data as artifacts",
                worker=record.get("worker", {}),
            )
        )

    def unfinished(self, run_id: str, raw_cells: list[Any]) -> list[Cell]:
        """The cells of a message that have no record (after its task was killed)."""
        cells = check_cells(raw_cells, self.plan(run_id), run_id)
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
        cells = check_cells(raw_cells, self.plan(run_id), run_id)
        counts: dict[str, Any] = {
            "ran": 0,
            "duplicates": 0,
            "lost": 0,
            "cancelled": 0,
            "requeue": [],
        }
        keys = [cell_key(c.condition, c.replicate) for c in cells]
        ready = self._prepare(run_id, manifest, recheck=not speculative)
        if self.requeue and ready.experiment is None:
            return self._hand_back(run_id, manifest, cells, counts)
        record: dict[str, Any] | None = None
        quick = speculative and ready.quick  # a slow cell waits for its start: cancel stops it
        if quick and len(cells) == 1:
            record = self._cell_record(run_id, manifest, cells[0], None)
            ready.quick = _quick(record)
            _, start = self.store.start_and_put(
                run_id, self._encode(record, cells[0]), record["timing"]["started"]
            )
            self._tally(counts, start, record)
            return counts
        if quick:
            answer = self.store.start_cell_soon(run_id, keys[0])
            record = self._cell_record(run_id, manifest, cells[0], None)
            ready.quick = _quick(record)
            start = answer()
        else:
            start = self.store.start_cell(run_id, keys[0])
        for i, cell in enumerate(cells):
            if start.recorded or start.cancelled:
                record = None
            elif record is None:
                record = self._cell_record(run_id, manifest, cell, start.attempt)
                ready.quick = _quick(record)
            self._tally(counts, start, record)
            following = keys[i + 1] if i + 1 < len(keys) else None
            if record is None and following is None:
                break
            encoded = None if record is None else self._encode(record, cell)
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
        self, run_id: str, manifest: Mapping[str, Any], cells: list[Cell], counts: dict[str, Any]
    ) -> dict[str, Any]:
        """This worker cannot load the experiment: count each cell's attempt and hand it
        back for another worker, recording the failure once a cell is out of attempts."""
        limit = int(manifest.get("options", {}).get("max_attempts", self.settings.max_attempts))
        for cell in cells:
            start = self.store.start_cell(run_id, cell.key)
            if start.recorded:
                counts["duplicates"] += 1
            elif start.cancelled:
                counts["cancelled"] += 1
            elif start.attempt < limit:
                counts["requeue"].append(cell)
            else:
                record = self._cell_record(run_id, manifest, cell, None)
                self.store.put_record(run_id, self._encode(record, cell))
                counts["lost"] += 1
        return counts

    def _cell_record(
        self, run_id: str, manifest: Mapping[str, Any], cell: Cell, attempt: int | None
    ) -> dict[str, Any]:
        """The record of a started cell: run it, or say why it cannot run. ``attempt`` is
        None while a speculative start is still on its way."""
        if run_id not in self._noted:
            info = {**self.env, "host": self.hostname, "drift": drift(manifest, self.env)}
            self.store.note_worker(run_id, self.node, info)
            self._noted.add(run_id)
        options = manifest.get("options", {})
        limit = int(options.get("max_attempts", self.settings.max_attempts))
        moved = drift(manifest, self.env)
        prepared = self._prepare(run_id, manifest)
        if attempt is not None and attempt > limit:
            record = error_record(
                cell,
                "WorkerLostError",
                f"worker lost: cell {cell.key} was started {attempt - 1} counted times and "
                f"never finished - its process died or was killed at the hard time limit "
                f"({self.settings.task_limits()[1]:g}s) each time (limit {limit}); "
                "recorded as failed",
            )
        elif prepared.experiment is None:
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
            record = self._execute(prepared.experiment, cell, options)
        record["worker"] = {**record.get("worker", {}), **self._stamp}
        if self.ship_artifacts and record.get("artifacts"):
            ship(self.store, record, self.settings.max_record_bytes)
        if moved:
            record["drift"] = moved
        return record
