"""Reading runs back: the Result of a run (recomputed from manifest + records at any time)
and its status (from O(1) counters)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.artifacts import artifact_root, fetch
from crystallize_dist.distributed.manifest import provenance_meta
from crystallize_dist.distributed.store import RunStore
from crystallize_dist.distributed.verification import RunVerification
from crystallize_dist.engine.aggregate import aggregate
from crystallize_dist.engine.plan import RunPlan
from crystallize_dist.model.experiment import Experiment
from crystallize_dist.model.hypothesis import Hypothesis
from crystallize_dist.model.result import Result

_log = logging.getLogger("crystallize_dist")
#: how to verify a run's hypotheses, said when they could not be
HOW_TO_VERIFY = (
    "pass the submitted experiment to verify them (crystallize-dist result RUN --experiment "
    "REF, or load_result(..., experiment=...))"
)


def _hypotheses(
    manifest: dict[str, Any], experiment: Experiment | None
) -> tuple[list[Hypothesis], str | None]:
    """The run's hypotheses, from an experiment the reader passes, and only when it is the
    submitted code (same fingerprint). Reading a run never imports code named by the store:
    that would run whatever someone with write access to Redis put there."""
    names = manifest["experiment"].get("hypotheses") or []
    if not names:
        return [], None
    if experiment is None:
        return [], f"hypotheses not verified: reading a run imports no code; {HOW_TO_VERIFY}"
    found, submitted = experiment.fingerprint(), str(manifest["experiment"]["fingerprint"])
    if found != submitted:
        return [], (
            f"hypotheses not verified: the experiment given has fingerprint {found[:12]}, "
            f"the run was submitted with {submitted[:12]}; {HOW_TO_VERIFY}"
        )
    by_name = {h.name: h for h in experiment.hypotheses}
    return [by_name[n] for n in names if n in by_name], None


def load_result(
    store: RunStore,
    run_id: str,
    *,
    experiment: Experiment | None = None,
    settings: Settings | None = None,
    verify: bool = True,
    keep_steps: bool | None = None,
    artifacts_dir: str | Path | None = None,
) -> Result:
    """Aggregate a run from its manifest and records (complete or partial), streaming the
    records from the store in pages. It imports no code and writes files only under the
    reader's own artifact root.

    With ``settings.secret`` the manifest must verify (else SignatureError) and every record
    is verified (``verification``). Hypotheses are verified with ``experiment`` when it is
    the submitted code; a partial result lists its missing cells in ``result.missing``.
    Shipped artifacts are written under ``artifacts_dir`` (default: ``experiment``'s
    ArtifactPlugin root, or ``./data``), never where the manifest says. Per-step provenance
    (``ctx_changes``) is kept for runs of up to ``STEP_PROVENANCE_LIMIT`` cells unless
    ``keep_steps`` says otherwise (it stays in each cell's record either way).
    """
    manifest = store.manifest(run_id)
    checks = RunVerification(settings.secret if settings else None, run_id)
    checks.manifest(manifest)
    plan = RunPlan.from_dict(manifest["plan"])
    if keep_steps is None:
        keep_steps = plan.n_cells <= C.STEP_PROVENANCE_LIMIT
    hyps, note = _hypotheses(manifest, experiment) if verify else ([], None)
    workers = checks.workers(store.workers(run_id))
    meta = provenance_meta(manifest, workers=workers, state=checks.state(store.state(run_id)))
    if note:
        meta["hypothesis_note"] = note
    if not keep_steps:
        meta["ctx_changes_omitted"] = (
            f"{plan.n_cells} cells: per-step provenance is in each cell's record only"
        )
    root = artifacts_dir if artifacts_dir is not None else artifact_root(experiment)
    notes = checks.notes
    records = store.iter_records(run_id, steps=keep_steps, check=checks.records)
    result = aggregate(
        plan,
        fetch(store, records, root, notes),
        hypotheses=hyps,
        meta=meta,
        keep_steps=keep_steps,
        hypothesis_errors="record",
    )
    result.provenance["signatures"] = checks.summary()
    if notes:
        result.provenance["read_notes"] = notes
    return result


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "experiment": self.experiment,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "pending": self.pending,
            "per_condition": self.per_condition,
            "attempts": self.attempts,
            "duplicates": self.duplicates,
            "workers": self.workers,
            "elapsed": self.elapsed,
            "eta": self.eta,
            "cancelled": self.cancelled,
            "finished": self.finished,
            **self.extra,
        }


def run_status(store: RunStore, run_id: str, now: float | None = None) -> RunStatus:
    """The status of a run from its manifest and counters."""
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
    # a finished or cancelled run stopped at its last record; one with no cell started yet
    # has been waiting since it was submitted
    end = last if (finished_cells >= total or cancelled) and last else now
    start = first or float(manifest.get("created", 0)) or end
    elapsed = max(0.0, end - start)
    eta = None
    if first and 0 < finished_cells < total and not cancelled:
        eta = elapsed / finished_cells * (total - finished_cells)
    workers = store.workers(run_id)
    extra: dict[str, Any] = {}
    drifted = {h: w.get("drift") for h, w in workers.items() if w.get("drift")}
    if drifted:
        extra["drift"] = drifted
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
        extra=extra,
    )


def wait_for(
    store: RunStore,
    run_id: str,
    *,
    timeout: float | None = None,
    poll: float = 0.2,
    on_progress: Any = None,
) -> RunStatus:
    """Poll the counters until every cell has a record (or ``timeout`` seconds pass)."""
    from crystallize_dist.errors import RunTimeoutError

    start = time.monotonic()
    seen = 0
    while True:
        status = run_status(store, run_id)
        done = status.done + status.failed
        if on_progress is not None and done != seen:
            on_progress(done - seen)
            seen = done
        if status.finished or status.cancelled:
            return status
        if timeout is not None and time.monotonic() - start > timeout:
            raise RunTimeoutError(
                f"run '{run_id}' has {status.pending} of {status.total} cells without a record "
                f"after {timeout:.0f}s; check workers with `crystallize-dist status {run_id}`"
            )
        time.sleep(poll)


def lost_cells(store: RunStore, settings: Settings, run_id: str) -> list[str]:
    """Cells without a record and without a task message anywhere in the broker: nothing
    will run them until ``resume``. (A message moving from the queue to a worker is briefly
    in neither place, so a cell can show as lost for an instant.)"""
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
    again = store.has_records(run_id, [k for k in pending if k not in queued])
    return [
        k
        for k, done in zip([k for k in pending if k not in queued], again, strict=True)
        if not done
    ]


def run_status_with_lost(
    store: RunStore,
    settings: Settings,
    run_id: str,
    *,
    lost: bool | None = None,
    local: bool = False,
) -> RunStatus:
    """``run_status``, with ``extra["lost"]`` (see ``lost_cells``) for a broker run that has
    pending cells and is not cancelled - when ``lost`` asks, or by default when the run's
    queue is small enough to scan (at most ``SCAN_LIMIT`` messages)."""
    from crystallize_dist.distributed.broker import SCAN_LIMIT, queue_size
    from crystallize_dist.distributed.manifest import run_settings

    st = run_status(store, run_id)
    if local or st.pending <= 0 or st.cancelled or lost is False:
        return st
    if lost or queue_size(run_settings(settings, store.manifest(run_id))) <= SCAN_LIMIT:
        st.extra["lost"] = lost_cells(store, settings, run_id)
    return st
