"""The coordinator: plan a run, write its manifest, enqueue its cells; resume and cancel.

``submit`` is the one entry point the CLI, CeleryExecution and ``--local`` share.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crystallize_dist.canonical import dumps
from crystallize_dist.config import Settings
from crystallize_dist.distributed.canary_tasks import send_sample, with_canary
from crystallize_dist.distributed.manifest import (
    build_manifest,
    new_run_id,
    run_options,
    run_settings,
)
from crystallize_dist.distributed.messages import cell_message, task_id
from crystallize_dist.distributed.publisher import batches, enqueue
from crystallize_dist.distributed.record_signatures import RecordVerifier
from crystallize_dist.distributed.signing import sign_entry, sign_manifest, verify_manifest
from crystallize_dist.distributed.store import RunStore, cell_key
from crystallize_dist.engine.plan import Cell, RunPlan
from crystallize_dist.engine.runspec import RunSpec, resolve
from crystallize_dist.errors import (
    CodeMismatchError,
    ConfigError,
    ExperimentLoadError,
    InvalidOptionError,
)
from crystallize_dist.model.experiment import Experiment
from crystallize_dist.model.options import check_replicates
from crystallize_dist.model.references import ExperimentRef, load_experiment, load_ref


@dataclass
class Submission:
    """What ``submit`` did: the run id, its manifest, the number of messages sent and the
    experiment as the submitter loaded it (a reader of the run needs no other copy)."""

    run_id: str
    manifest: dict[str, Any]
    messages: int
    experiment: Experiment | None = None


def plan_run(
    experiment: Experiment,
    *,
    treatments: Sequence[str] | None = None,
    replicates: int | None = None,
    seed: int | None = None,
) -> RunSpec:
    """Resolve CLI-style options (treatment names, replicate count, seed) into a RunSpec."""
    chosen = None
    if treatments:
        known = {t.name: t for t in experiment.treatments}
        unknown = [n for n in treatments if n not in known]
        if unknown:
            raise InvalidOptionError(
                f"unknown treatment '{unknown[0]}'; the experiment has "
                f"{sorted(known) or 'no treatments'}"
            )
        chosen = [known[n] for n in dict.fromkeys(treatments)]
    if replicates is not None:
        check_replicates(replicates)
        if replicates < 1:
            raise InvalidOptionError(f"replicates must be >= 1, got {replicates}")
    return resolve(
        experiment,
        treatments=chosen,
        replicates=replicates,
        seed=seed,
        strategy="rerun",
    )


def enqueue_slow(
    settings: Settings, run_id: str, cells: Sequence[Cell], cells_per_task: int = 1
) -> int:
    """The same messages through ``apply_async`` over one producer (the benchmarks' yardstick)."""
    from crystallize_dist import constants as C
    from crystallize_dist.distributed.app import app_for

    app = app_for(settings)
    task = app.tasks[C.TASK_RUN_CELLS]
    groups = batches(cells, max(1, cells_per_task))
    with app.producer_or_acquire() as producer:
        for group in groups:
            soft, hard = settings.task_limits(len(group))
            task.apply_async(
                args=(run_id, [cell_message(c) for c in group]),
                task_id=task_id(run_id, group),
                producer=producer,
                queue=settings.queue,
                soft_time_limit=soft,
                time_limit=hard,
            )
    return len(groups)


def create_run(
    store: RunStore,
    experiment: Experiment,
    ref: ExperimentRef,
    ref_text: str,
    spec: RunSpec,
    options: dict[str, Any],
    run_id: str | None = None,
    *,
    secret: str | None = None,
) -> dict[str, Any]:
    """Write the manifest of a new run - signed with ``secret`` when there is one - and
    return it as it is stored (JSON types only, so its signature verifies as read back)."""
    run_id = run_id or new_run_id()
    built = build_manifest(run_id, experiment, ref, ref_text, spec, options)
    manifest: dict[str, Any] = sign_manifest(json.loads(dumps(built)), secret)
    store.create_run(run_id, manifest)
    return manifest


def submit(
    ref_text: str,
    *,
    settings: Settings,
    store: RunStore,
    treatments: Sequence[str] | None = None,
    replicates: int | None = None,
    seed: int | None = None,
    cells_per_task: int = 1,
    local: bool = False,
    workers: int | None = None,
    base: Path | None = None,
    extra_options: Mapping[str, Any] | None = None,
) -> Submission:
    """Load, plan, write the manifest and (unless ``local``) enqueue: see ``with_canary``."""
    experiment, ref = load_experiment(ref_text, base)
    spec = plan_run(experiment, treatments=treatments, replicates=replicates, seed=seed)
    options = run_options(settings, cells_per_task=cells_per_task, local=local, workers=workers)
    options.update(with_canary(spec.plan, extra_options))
    from crystallize_dist.distributed.artifacts import choose_version
    from crystallize_dist.distributed.bundle import attach_bundle

    choose_version(experiment)

    manifest = create_run(
        store,
        experiment,
        ref,
        ref_text,
        spec,
        attach_bundle(options, ref, store, settings, local=local),
        secret=settings.secret,
    )
    sent = 0
    if not local:
        sent = enqueue(settings, manifest["run_id"], list(spec.plan.cells()), cells_per_task)
        sent += send_sample(settings, manifest)
    return Submission(manifest["run_id"], manifest, sent, experiment)


def missing_cells(
    store: RunStore, run_id: str, *, include_failed: bool = False, secret: str | None = None
) -> list[Cell]:
    """Cells of a run without a record - and, with ``include_failed``, failed ones, whose
    records are deleted so they can run again - in canonical order. With ``secret`` a
    record that does not verify counts as failed (``--retry-failed`` runs it again)."""
    plan = RunPlan.from_dict(store.manifest(run_id)["plan"])
    check = RecordVerifier(secret, run_id) if secret else None
    recorded: dict[str, str] = {
        cell_key(r["condition"], r["replicate"]): r["status"]
        for r in store.iter_records(run_id, steps=False, check=check)
    }
    failed = [k for k, status in recorded.items() if status != "ok"] if include_failed else []
    if failed:
        store.delete_records(run_id, failed)
    again = set(failed)
    return [
        c
        for c in plan.cells()
        if cell_key(c.condition, c.replicate) not in recorded
        or cell_key(c.condition, c.replicate) in again
    ]


def local_fingerprint(ref: ExperimentRef) -> str | None:
    """The fingerprint of the experiment as its code is on this machine, or None."""
    try:
        return load_ref(ref).fingerprint()
    except (ExperimentLoadError, ConfigError):
        return None


def resume(
    run_id: str,
    *,
    settings: Settings,
    store: RunStore,
    retry_failed: bool = False,
    allow_drift: bool = False,
    local: bool = False,
) -> list[Cell]:
    """Re-enqueue the cells of a run that have no record (and failed ones with
    ``retry_failed``), with their original seeds. Refuses when the experiment's code changed,
    unless ``allow_drift`` (which is stamped on the result)."""
    manifest = store.manifest(run_id)
    if settings.secret:  # before the reference it names is imported
        verify_manifest(manifest, run_id, settings.secret)
    info = manifest["experiment"]
    ref = ExperimentRef.from_dict(info["ref"])
    found = local_fingerprint(ref)
    if found is None:  # the code is not on this machine: the run's bundle will be used
        from crystallize_dist.distributed.bundle import ensure_code

        found = load_ref(ensure_code(ref, manifest, store, settings)).fingerprint()
    if found != info["fingerprint"]:
        if not allow_drift:
            raise CodeMismatchError(
                f"run '{run_id}': the experiment's code changed since it was submitted "
                f"(fingerprint {found[:12]}, submitted {info['fingerprint'][:12]}); "
                "pass --allow-drift to resume with the new code"
            )
        from crystallize_dist.distributed.bundle import attach_bundle

        shipped = attach_bundle({}, ref, store, settings, local=local).get("bundle")
        entry = {"submitted": info["fingerprint"], "resumed_with": found, "bundle": shipped}
        store.update_state(
            run_id, allow_drift=sign_entry(entry, settings.secret, run_id, "allow_drift")
        )
    todo = missing_cells(store, run_id, include_failed=retry_failed, secret=settings.secret)
    state = store.state(run_id)
    resumes = int(state.get("resumes", 0)) + 1
    store.update_state(run_id, resumes=resumes, cancelled=False, interrupted=False, failed=None)
    # after the flag is down: a cell skipped while the run was cancelled goes again, even
    # when the message that skipped it is still held unacknowledged (it will not run it)
    skipped = store.take_skipped(run_id)
    if todo and not local:
        from crystallize_dist.distributed.broker import queued_cells

        own = run_settings(settings, manifest)  # the run's queue, whoever resumes it
        queued = queued_cells(own, run_id) - skipped  # cells waiting or running are not lost
        todo = [c for c in todo if cell_key(c.condition, c.replicate) not in queued]
        per_task = int(manifest.get("options", {}).get("cells_per_task", 1) or 1)
        if todo:
            enqueue(own, run_id, todo, per_task, again=True)
    return todo


def cancel(run_id: str, *, store: RunStore) -> str:
    """Mark a run cancelled: workers skip its cells; recorded cells stay. Returns what was
    done, in a line: a finished or already cancelled run is left as it is."""
    from crystallize_dist.distributed.status import run_status

    status = run_status(store, run_id)  # raises RunNotFoundError for an unknown run
    if status.cancelled:
        return f"run {run_id} is already cancelled; nothing changed"
    if status.finished:
        return f"run {run_id} already finished (every cell has a record); nothing to cancel"
    store.update_state(run_id, cancelled=True)
    return f"cancelled {run_id}"


def delete(run_id: str, *, store: RunStore, settings: Settings | None) -> int:
    """Remove a run: its keys (or rows) and, for a run on workers, the task messages of it
    still queued or held; returns the number of messages removed. A worker still running one
    of its cells finds the run gone and writes nothing."""
    manifest = store.manifest(run_id)  # raises RunNotFoundError for an unknown run
    removed = 0
    if settings is not None:
        from crystallize_dist.distributed.broker import drop_messages

        removed = drop_messages(run_settings(settings, manifest), run_id)
    store.delete_run(run_id)
    return removed


def purge(older_than: float, *, store: RunStore, settings: Settings | None) -> list[str]:
    """Delete every run created more than ``older_than`` seconds ago; returns their ids."""
    import time

    from crystallize_dist.errors import RunNotFoundError

    gone = []
    for run_id in store.runs_created_before(time.time() - older_than):
        try:
            delete(run_id, store=store, settings=settings)
        except RunNotFoundError:  # its keys expired already: only its index entry was left
            store.delete_run(run_id)
        gone.append(run_id)
    return gone
