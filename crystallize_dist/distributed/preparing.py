"""Readying a run's experiment in a worker process.

With a secret, a worker first verifies the run's manifest (and a ``resume --allow-drift``
entry of its state) and imports nothing from a run that does not verify: every cell of it
is recorded as that error at once, not handed to another worker. It then loads the
experiment by reference (from the run's code bundle when this machine's copy differs),
checks its fingerprint against the manifest, and builds the run's RunSpec from the
manifest's plan - the seeds in the manifest are the truth. A loaded experiment is kept per
reference and fingerprint, a readied run per run id.
"""

from __future__ import annotations

import atexit
import copy
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.artifacts import for_run
from crystallize_dist.distributed.signing import verify_entry, verify_manifest
from crystallize_dist.distributed.store.base import RunStore
from crystallize_dist.engine.environment import versions
from crystallize_dist.engine.plan import RunPlan
from crystallize_dist.engine.runspec import RunSpec, resolve
from crystallize_dist.errors import CodeMismatchError, SignatureError
from crystallize_dist.model.experiment import Experiment
from crystallize_dist.model.references import ExperimentRef, load_ref

_log = logging.getLogger("crystallize_dist.worker")
#: runs whose readied experiment a worker process keeps.
MAX_PREPARED_RUNS = 16
#: steps whose teardown this process runs at exit (steps are shared by a base's run copies)
_TORN_DOWN: set[int] = set()


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


def first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0]


def spec_for_run(base: Experiment, manifest: Mapping[str, Any]) -> RunSpec:
    """The RunSpec of the run ``manifest`` describes, on a shallow copy of ``base`` (runs
    never share one): its treatments looked up by name, the manifest's plan as it is, its
    artifacts written where the manifest says, ``strict_params`` when the experiment or the
    run's options ask for it; every step set up (and torn down at exit)."""
    plan = RunPlan.from_dict(manifest["plan"])
    exp = copy.copy(base)
    by_name = {t.name: t for t in base.treatments}
    missing = [n for n in plan.treatments if n not in by_name]
    if missing:
        raise CodeMismatchError(f"this worker's experiment has no treatment {missing[0]!r}")
    for_run(exp, manifest["experiment"].get("artifacts"))
    chosen = [by_name[n] for n in plan.treatments]
    spec = resolve(exp, treatments=chosen, hypotheses=[], plan=plan)
    # a cell's warnings go into its record, and whoever reads the run says them
    spec.say = None
    spec.strict_params = spec.strict_params or bool(
        manifest.get("options", {}).get("strict_params")
    )
    exp.assign_id()
    for step in exp.pipeline.steps:
        step.setup(exp.setup_ctx)
        if id(step) not in _TORN_DOWN:
            _TORN_DOWN.add(id(step))
            atexit.register(step.teardown, exp.setup_ctx)
    return spec


@dataclass
class Prepared:
    """A run readied in this process (``spec``), or why it could not be (``failure``:
    error type and message; ``failed_loads``: how many loads of the run have failed on all
    workers together, when this one failed)."""

    spec: RunSpec | None
    failure: tuple[str, str] | None
    fingerprint: str | None = None
    #: the last cell this process ran for the run was quick (see ``cell_records.quick``)
    quick: bool = False
    failed_loads: int = 0
    failed_at: float = 0.0
    #: the failure is the run's, not this worker's (a signature that does not verify):
    #: another worker cannot do better, so its cells are recorded at once
    final: bool = False


class Preparer:
    """Readies runs in one worker process (see the module docstring)."""

    def __init__(
        self,
        store: RunStore,
        settings: Settings,
        loader: Callable[[Mapping[str, Any]], Experiment] | None = None,
        node: str = "",
        *,
        require_bundle: bool = False,
    ) -> None:
        self.store = store
        self.settings = settings
        self.node = node
        #: see ``bundle.ensure_code`` (Celery workers)
        self.require_bundle = require_bundle
        self._loader = loader or self._load
        self._experiments: dict[tuple[str, str], Experiment] = {}
        self._prepared: dict[str, Prepared] = {}
        #: runs this process failed to load, kept LOAD_RETRY_SECONDS before it tries again
        self._failed: dict[str, Prepared] = {}
        self._lock = threading.Lock()

    def _load(self, manifest: Mapping[str, Any]) -> Experiment:
        from crystallize_dist.distributed.bundle import ensure_code

        ref = ExperimentRef.from_dict(manifest["experiment"]["ref"])
        ref = ensure_code(
            ref, manifest, self.store, self.settings, require_bundle=self.require_bundle
        )
        return load_ref(ref)

    def prepare(
        self, run_id: str, manifest: Mapping[str, Any], *, recheck: bool = False
    ) -> Prepared:
        """The run readied (kept per run). ``recheck`` (a resent or redelivered message)
        looks again at the run's state: after ``resume --allow-drift`` a warm worker must
        switch to the code it was resumed with."""
        with self._lock:  # threads pool: one thread loads, the others wait for it
            failed = self._failed.get(run_id)
            if failed is not None and time.monotonic() - failed.failed_at < C.LOAD_RETRY_SECONDS:
                return failed
            cached = self._prepared.get(run_id)
            if cached is not None and recheck:
                drift_ok = self.store.state(run_id).get("allow_drift")
                wanted = drift_ok.get("resumed_with") if isinstance(drift_ok, dict) else None
                if wanted and wanted != cached.fingerprint:
                    cached = None
            return cached or self._prepare_locked(run_id, manifest)

    def _prepare_locked(self, run_id: str, manifest: Mapping[str, Any]) -> Prepared:
        secret = self.settings.secret
        try:
            drift_ok = self.store.state(run_id).get("allow_drift")
            if secret:  # before anything the run names is looked at, let alone imported
                verify_manifest(manifest, run_id, secret)
                if drift_ok is not None:
                    verify_entry(drift_ok, secret, run_id, "allow_drift")
            info = manifest["experiment"]
            allowed = {info["fingerprint"]}
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
            prepared = Prepared(spec_for_run(base, manifest), None, min(allowed))
        except SignatureError as exc:  # the run's own fault: no worker with the secret runs it
            _log.error("run %s: refused: %s", run_id, exc)
            failed = self._failure(run_id, type(exc).__name__, str(exc))
            failed.final = True
            return failed
        except Exception as exc:
            _log.error("run %s: cannot prepare experiment: %s", run_id, exc)
            return self._failure(run_id, type(exc).__name__, str(exc))
        self._prepared[run_id] = prepared
        self._failed.pop(run_id, None)
        while len(self._prepared) > MAX_PREPARED_RUNS:  # a long-lived worker sees many runs
            self._prepared.pop(next(iter(self._prepared)))
        return prepared

    def _failure(self, run_id: str, kind: str, message: str) -> Prepared:
        """A failed load: noted in the run's state once per failure (``status`` and ``wait``
        show it) and kept for LOAD_RETRY_SECONDS."""
        node = self.node or f"pid {os.getpid()}"
        try:
            count = self.store.note_load_failure(run_id, node, f"{kind}: {first_line(message)}")
        except Exception:  # the store is out of reach: the cells say why when it is back
            count = 0
        failed = Prepared(None, (kind, message), failed_loads=count, failed_at=time.monotonic())
        self._failed[run_id] = failed
        return failed
