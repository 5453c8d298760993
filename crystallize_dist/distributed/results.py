"""Reading a run back: its Result, recomputed from the manifest and the records at any time
(its status is in ``status.py``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.artifact_store import ArtifactStore, open_artifact_store
from crystallize_dist.distributed.artifacts import artifact_root, fetch
from crystallize_dist.distributed.canary import summary as canary_summary
from crystallize_dist.distributed.manifest import provenance_meta
from crystallize_dist.distributed.store import RunStore
from crystallize_dist.distributed.store.compact import RecordTemplate
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
    found, submitted = experiment.fingerprint(), str(manifest["experiment"].get("fingerprint"))
    if found != submitted:
        return [], (
            f"hypotheses not verified: the experiment given has fingerprint {found[:12]}, "
            f"the run was submitted with {submitted[:12]}; {HOW_TO_VERIFY}"
        )
    by_name = {h.name: h for h in experiment.hypotheses}
    return [by_name[n] for n in names if n in by_name], None


def _artifact_store(settings: Settings | None) -> ArtifactStore | None:
    """The reader's own artifact store (its settings, else its environment)."""
    return open_artifact_store((settings or Settings.from_env()).artifact_store)


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
    state = store.state(run_id)
    meta = provenance_meta(manifest, workers=workers, state=checks.state(state))
    canary = canary_summary(manifest, state, settings.secret if settings else None, run_id)
    if canary is not None:
        meta["canary"] = canary
    if note:
        meta["hypothesis_note"] = note
    if not keep_steps:
        meta["ctx_changes_omitted"] = (
            f"{plan.n_cells} cells: per-step provenance is in each cell's record only"
        )
    root = artifacts_dir if artifacts_dir is not None else artifact_root(experiment)
    notes = checks.notes
    template = RecordTemplate.of(manifest, workers)  # the nodes of verified stamps only
    records = store.iter_records(run_id, steps=keep_steps, check=checks.records, template=template)
    result = aggregate(
        plan,
        fetch(store, records, root, notes, _artifact_store(settings)),
        hypotheses=hyps,
        meta=meta,
        keep_steps=keep_steps,
        hypothesis_errors="record",
    )
    result.provenance["signatures"] = checks.summary()
    if notes:
        result.provenance["read_notes"] = sorted(notes)  # records arrive in store order
    return result
