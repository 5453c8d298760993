"""The run manifest: everything a worker or a later reader needs, written once at submit."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crystallize_dist.config import Settings
from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.distributed.artifacts import artifact_info, artifact_root
from crystallize_dist.engine.environment import git_state, host_environment, package_version
from crystallize_dist.engine.runspec import RunSpec
from crystallize_dist.model.experiment import Experiment
from crystallize_dist.model.references import ExperimentRef

MANIFEST_VERSION = 1


def run_options(settings: Settings, **extra: Any) -> dict[str, Any]:
    """The options a run is submitted with (stored in its manifest, read by workers)."""
    return {
        "drift_policy": settings.drift_policy,
        "max_attempts": settings.max_attempts,
        "retries": settings.retries,
        "cell_time_limit": settings.cell_time_limit,
        "queue": settings.queue,
        "strict_params": settings.strict_params,
        **extra,
    }


def run_settings(settings: Settings, manifest: Mapping[str, Any]) -> Settings:
    """``settings`` with the options the run was submitted with (its queue, time limit,
    attempts): resuming or inspecting a run uses the run's own, whoever runs the command."""
    options = manifest.get("options", {})
    keys = ("queue", "cell_time_limit", "max_attempts", "retries", "drift_policy")
    changes = {k: options[k] for k in keys if options.get(k) is not None}
    try:
        return settings.replace(**changes)
    except ValueError:  # e.g. this machine's visibility timeout is too short for the run
        return settings.replace(queue=changes.get("queue"))


def new_run_id() -> str:
    """A sortable, unique run id: ``YYYYMMDD-HHMMSS-<6 hex>`` (UTC)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def submitter_environment(ref: ExperimentRef) -> dict[str, Any]:
    env = host_environment()
    env["celery"] = package_version("celery")
    env["cwd"] = os.getcwd()
    where = Path(ref.target) if ref.kind != "module" else Path.cwd()
    git = git_state(where)
    if git is not None:
        env["git"] = git
    return env


def build_manifest(
    run_id: str,
    experiment: Experiment,
    ref: ExperimentRef,
    ref_text: str,
    spec: RunSpec,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """The immutable manifest of a run (see README, "What a run stores")."""
    plan = spec.plan
    return {
        "version": MANIFEST_VERSION,
        "run_id": run_id,
        "created": time.time(),
        "experiment": {
            "ref": ref.to_dict(),
            "text": ref_text,
            "name": experiment.name,
            "fingerprint": experiment.fingerprint(),
            "pipeline_signature": experiment.pipeline.signature(),
            "hypotheses": [h.name for h in spec.hypotheses],
            "artifact_root": artifact_root(experiment),
            "artifacts": artifact_info(experiment),
        },
        "plan": plan.to_dict(),
        "conditions": [BASELINE_CONDITION, *plan.treatments],
        "n_cells": plan.n_cells,
        "seeds": plan.seeds,
        "options": dict(options),
        "submitter": submitter_environment(ref),
    }


def provenance_meta(
    manifest: Mapping[str, Any],
    *,
    workers: Mapping[str, Any] | None = None,
    state: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What a distributed result's provenance adds to the core's, from the manifest."""
    exp = manifest["experiment"]
    submitter = manifest.get("submitter", {})
    meta: dict[str, Any] = {
        "run_id": manifest["run_id"],
        "experiment": exp.get("name"),
        "experiment_ref": exp.get("text"),
        "fingerprint": exp.get("fingerprint"),
        "pipeline_signature": exp.get("pipeline_signature"),
        "environment": {
            k: submitter.get(k)
            for k in (
                "python",
                "numpy",
                "crystallize_dist",
                "celery",
                "hostname",
                "platform",
                "pythonhashseed",
            )
        },
        "submitter": dict(submitter),
        "options": dict(manifest.get("options", {})),
    }
    if workers:
        meta["workers"] = dict(workers)
        drifted = {host: w["drift"] for host, w in workers.items() if w.get("drift")}
        if drifted:
            meta["drift"] = drifted
    if state:
        for key in ("allow_drift", "resumes", "cancelled", "failed"):
            if state.get(key):
                meta[key] = state[key]
    return meta
