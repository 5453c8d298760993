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
import hashlib
import logging
import pickle
import socket
import time
from collections.abc import Mapping
from typing import Any

from crystallize_dist.config import Settings
from crystallize_dist.core.cell import STATUS_ERROR, run_cell
from crystallize_dist.core.environment import versions
from crystallize_dist.core.experiment import Experiment
from crystallize_dist.core.loading import ExperimentRef, load_ref
from crystallize_dist.core.plan import Cell, RunPlan
from crystallize_dist.dist.messages import check_cells
from crystallize_dist.dist.store.base import RunStore, cell_key
from crystallize_dist.errors import CodeMismatchError

_log = logging.getLogger("crystallize_dist.worker")


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


class _Prepared:
    """An experiment readied for one run in this process (or why it could not be)."""

    def __init__(self, experiment: Experiment | None, failure: tuple[str, str] | None) -> None:
        self.experiment = experiment
        self.failure = failure


class CellRunner:
    """Runs cells of any run against a store; one instance per worker process."""

    def __init__(
        self, store: RunStore, settings: Settings, node: str | None = None, loader: Any = None
    ) -> None:
        self.store = store
        self.settings = settings
        # "name@host" as Celery names workers; the host part says which machine ran a cell
        self.node = node or f"local@{socket.gethostname()}"
        self.hostname = self.node.rpartition("@")[2] or socket.gethostname()
        self.env = worker_environment()
        self._loader = loader or self._load
        self._manifests: dict[str, dict[str, Any]] = {}
        self._experiments: dict[tuple[str, str], Experiment] = {}
        self._prepared: dict[str, _Prepared] = {}
        self._noted: set[str] = set()

    # -- caches ---------------------------------------------------------------------------------
    def manifest(self, run_id: str) -> dict[str, Any]:
        if run_id not in self._manifests:
            self._manifests[run_id] = self.store.manifest(run_id)
        return self._manifests[run_id]

    def _load(self, manifest: Mapping[str, Any]) -> Experiment:
        from crystallize_dist.dist.bundle import ensure_code

        ref = ExperimentRef.from_dict(manifest["experiment"]["ref"])
        ref = ensure_code(ref, manifest, self.store, self.settings)
        return load_ref(ref)

    def _prepare(self, run_id: str, manifest: Mapping[str, Any]) -> _Prepared:
        if run_id in self._prepared:
            return self._prepared[run_id]
        info = manifest["experiment"]
        key = (str(info["ref"]), info["fingerprint"])
        try:
            base = self._experiments.get(key)
            if base is None:
                base = self._loader(manifest)
                found = base.fingerprint()
                allowed = {info["fingerprint"]}
                drift_ok = self.store.state(run_id).get("allow_drift")
                if isinstance(drift_ok, dict):
                    allowed.add(drift_ok.get("resumed_with"))
                if found not in allowed:
                    raise CodeMismatchError(
                        f"this worker's code differs from what was submitted: experiment "
                        f"{info.get('text') or info['ref']} has fingerprint {found[:12]} "
                        f"here but {info['fingerprint'][:12]} in the manifest; deploy the "
                        "submitted code (or resubmit)"
                    )
                self._experiments[key] = base
            prepared = _Prepared(self._for_run(base, manifest), None)
        except Exception as exc:
            _log.error("run %s: cannot prepare experiment: %s", run_id, exc)
            prepared = _Prepared(None, (type(exc).__name__, str(exc)))
        self._prepared[run_id] = prepared
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
        exp._active = spec
        exp.id = hashlib.sha256(pickle.dumps(exp.pipeline.signature())).hexdigest()
        for step in exp.pipeline.steps:
            step.setup(exp._setup_ctx)
            atexit.register(step.teardown, exp._setup_ctx)
        return exp

    # -- the work -------------------------------------------------------------------------------
    def run(self, run_id: str, raw_cells: list[Any]) -> dict[str, int]:
        """Run one message's cells; returns counts of what happened to them."""
        manifest = self.manifest(run_id)
        plan = RunPlan.from_dict(manifest["plan"])
        cells = check_cells(raw_cells, plan, run_id)
        counts = {"ran": 0, "duplicates": 0, "lost": 0, "cancelled": 0}
        if self.store.cancelled(run_id):
            counts["cancelled"] = len(cells)
            return counts
        have = self.store.has_records(run_id, [cell_key(c.condition, c.replicate) for c in cells])
        todo = []
        for cell, done in zip(cells, have, strict=True):
            if done:
                self.store.note_duplicate(run_id, cell_key(cell.condition, cell.replicate))
                counts["duplicates"] += 1
            else:
                todo.append(cell)
        if not todo:
            return counts
        if run_id not in self._noted:
            info = {**self.env, "host": self.hostname, "drift": drift(manifest, self.env)}
            self.store.note_worker(run_id, self.node, info)
            self._noted.add(run_id)
        prepared = self._prepare(run_id, manifest)
        stamp = {**self.env, "host": self.hostname, "node": self.node}
        moved = drift(manifest, self.env)
        policy = manifest.get("options", {}).get("drift_policy", "warn")
        for cell in todo:
            key = cell_key(cell.condition, cell.replicate)
            attempt = self.store.note_attempt(run_id, key)
            limit = int(manifest.get("options", {}).get("max_attempts", self.settings.max_attempts))
            if attempt > limit:
                record = error_record(
                    cell,
                    "WorkerLostError",
                    f"worker lost: cell {key} was started {attempt - 1} times and its worker "
                    f"died each time (limit {limit}); recorded as failed",
                )
                counts["lost"] += 1
            elif prepared.experiment is None:
                assert prepared.failure is not None
                record = error_record(cell, *prepared.failure)
            elif moved and policy == "refuse":
                record = error_record(
                    cell,
                    "EnvironmentDriftError",
                    "worker environment differs from the submitter's: "
                    + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in moved.items()),
                )
            else:
                record = run_cell(prepared.experiment, cell)
                counts["ran"] += 1
            record["worker"] = {**record.get("worker", {}), **stamp}
            record["attempt"] = attempt
            if moved:
                record["drift"] = moved
            self.store.put_record(run_id, record)
        return counts
