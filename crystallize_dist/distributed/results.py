"""Reading a run back: its Result, recomputed from the manifest and the records at any time
(its status is in ``status.py``)."""

from __future__ import annotations

import logging
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.artifacts import artifact_root, fetch
from crystallize_dist.distributed.manifest import provenance_meta
from crystallize_dist.distributed.store import RunStore
from crystallize_dist.engine.aggregate import aggregate
from crystallize_dist.engine.plan import RunPlan
from crystallize_dist.model.experiment import Experiment
from crystallize_dist.model.hypothesis import Hypothesis
from crystallize_dist.model.references import ExperimentRef, load_ref
from crystallize_dist.model.result import Result

_log = logging.getLogger("crystallize_dist")


def _hypotheses(
    manifest: dict[str, Any], experiment: Experiment | None
) -> tuple[list[Hypothesis], str | None]:
    """The run's hypotheses, from the experiment's code *on this machine* when it is the
    submitted code. Reading a result never imports a code bundle from the store: that
    would run whatever someone with write access to Redis put there."""
    names = manifest["experiment"].get("hypotheses") or []
    if not names:
        return [], None
    if experiment is None:
        try:
            experiment = load_ref(ExperimentRef.from_dict(manifest["experiment"]["ref"]))
        except Exception as exc:
            return [], f"hypotheses not verified: the experiment's code is not here ({exc})"
        if experiment.fingerprint() != manifest["experiment"]["fingerprint"]:
            return [], (
                "hypotheses not verified: the experiment's code here differs from "
                "the submitted code"
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
) -> Result:
    """Aggregate a run from its manifest and records (complete or partial), streaming the
    records from the store in pages.

    Hypotheses are verified with the experiment's code when it can be loaded here; a partial
    result lists its missing cells in ``result.missing``. Per-step provenance
    (``ctx_changes``) is kept for runs of up to ``STEP_PROVENANCE_LIMIT`` cells unless
    ``keep_steps`` says otherwise (it stays in each cell's record either way).
    """
    manifest = store.manifest(run_id)
    plan = RunPlan.from_dict(manifest["plan"])
    if keep_steps is None:
        keep_steps = plan.n_cells <= C.STEP_PROVENANCE_LIMIT
    hyps, note = _hypotheses(manifest, experiment) if verify else ([], None)
    meta = provenance_meta(manifest, workers=store.workers(run_id), state=store.state(run_id))
    if note:
        meta["hypothesis_note"] = note
    if not keep_steps:
        meta["ctx_changes_omitted"] = (
            f"{plan.n_cells} cells: per-step provenance is in each cell's record only"
        )
    # artifacts that Celery workers wrote come here, under the experiment's artifact root
    root = manifest["experiment"].get("artifact_root") or artifact_root(experiment)
    result = aggregate(
        plan,
        fetch(store, store.iter_records(run_id, steps=keep_steps), root),
        hypotheses=hyps,
        meta=meta,
        keep_steps=keep_steps,
        hypothesis_errors="record",
    )
    return result
