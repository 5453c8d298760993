"""The determinism canary (``submit --canary FRACTION``): a seeded sample of a run's cells
is run a second time by another process and each pair's outcome is compared.

- The sample is drawn at submit from the run's master seed (``plan_canary``) and kept in
  the manifest's options, so it is signed with it.
- Another process runs each sampled cell again once its record is stored: on workers, a
  canary message (a ``run_cells`` message with a ``canary`` field) that a worker hands back
  while the record is missing, or was written by the same process, or - when other workers
  are alive - by the same node (``canary_tasks``); with ``--local``, a fresh pool process.
- ``check_cell`` compares the outcome of the stored record with the new one (the metrics
  digest of ``replay.outcome``, or the error type) and stores the verdict in the run state
  (field ``canary:<cell>``, signed with the secret when there is one).
- ``summary`` gathers the verdicts: ``status``, ``result.provenance["canary"]``, the report
  and the exit code of ``submit --wait`` / ``wait`` (3 on a mismatch) read it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from crystallize_dist import constants as C
from crystallize_dist.distributed.deadline import cell_deadline
from crystallize_dist.distributed.replay import outcome
from crystallize_dist.distributed.runner import CellRunner
from crystallize_dist.distributed.signing import sign_entry, verify_entry
from crystallize_dist.distributed.store.records import cell_key
from crystallize_dist.engine.cell import execute_cell
from crystallize_dist.engine.plan import Cell, RunPlan
from crystallize_dist.errors import InvalidOptionError, SignatureError

#: error types of records that say how a cell was lost or refused, not what it computed:
#: such a cell is not run again (its canary verdict is "skipped")
NOT_COMPUTED = frozenset(
    {
        "WorkerLostError",
        "InfrastructureError",
        "CellTimeoutError",
        "ExperimentLoadError",
        "CodeMismatchError",
        "EnvironmentDriftError",
        "TamperedRecordError",
        "CorruptRecordError",
        "SignatureError",
        "BundleError",
    }
)


def plan_canary(plan: RunPlan, fraction: float) -> dict[str, Any]:
    """The canary option of a run: ``fraction`` of its cells (at least one), drawn with the
    run's master seed, in canonical order."""
    if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise InvalidOptionError(f"--canary must be a fraction in (0, 1], got {fraction!r}")
    keys = [cell_key(c.condition, c.replicate) for c in plan.cells()]
    count = max(1, math.ceil(fraction * len(keys)))
    rng = np.random.default_rng([plan.master_seed, C.CANARY_SALT])
    chosen = sorted(int(i) for i in rng.choice(len(keys), size=count, replace=False))
    return {"fraction": float(fraction), "cells": [keys[i] for i in chosen]}


def sample_of(manifest: Mapping[str, Any]) -> list[str]:
    """The cells of a run's canary sample (none without ``--canary``), read by shape."""
    options = manifest.get("options")
    found = options.get("canary") if isinstance(options, Mapping) else None
    cells = found.get("cells") if isinstance(found, Mapping) else None
    return [c for c in cells if isinstance(c, str)] if isinstance(cells, list) else []


def _short(text: str) -> str:
    head, _, digest = text.partition(" ")
    return f"{head} {digest[:12]}" if head == "metrics" else text


def verdict(
    key: str, stored: Mapping[str, Any], fresh: Mapping[str, Any] | None, here: dict[str, Any]
) -> dict[str, Any]:
    """The canary entry of one cell: what its stored record and its re-run gave, where
    each ran, and whether they match (None: skipped, see ``NOT_COMPUTED``)."""
    stamp = stored.get("worker")
    worker: Mapping[str, Any] = stamp if isinstance(stamp, Mapping) else {}
    first = {"node": worker.get("node"), "pid": worker.get("pid")}
    was = outcome(stored)
    now = outcome(fresh) if fresh is not None else "skipped"
    return {
        "cell": key,
        "match": None if fresh is None else was == now,
        "stored": _short(was),
        "canary": _short(now),
        "first": first,
        "second": here,
        "same_process": first == here,
    }


def check_cell(runner: CellRunner, run_id: str, cell: Cell) -> dict[str, Any] | None:
    """Run ``cell`` again in this process and store the verdict; None when the cell has no
    record yet (nothing to compare with)."""
    key = cell_key(cell.condition, cell.replicate)
    stored = runner.store.get_record(run_id, cell.condition, cell.replicate)
    if stored is None:
        return None
    here = {"node": runner.node, "pid": os.getpid()}
    error = stored.get("error") if isinstance(stored.get("error"), Mapping) else None
    fresh: dict[str, Any] | None = None
    if stored.get("status") == "ok" or (error or {}).get("type") not in NOT_COMPUTED:
        manifest = runner.manifest(run_id)
        prepared = runner.preparer.prepare(run_id, manifest)
        if prepared.spec is None:
            kind, message = prepared.failure or ("ExperimentLoadError", "cannot load")
            fresh = {"status": "error", "error": {"type": kind, "message": message}}
        else:
            options = manifest.get("options") or {}
            limit = float(options.get("cell_time_limit", runner.settings.cell_time_limit))
            with cell_deadline(limit):
                fresh = execute_cell(prepared.spec, cell)
    entry = verdict(key, stored, fresh, here)
    name = C.CANARY_FIELD + key
    runner.store.update_state(
        run_id, **{name: sign_entry(entry, runner.settings.secret, run_id, name)}
    )
    return entry


def summary(
    manifest: Mapping[str, Any], state: Mapping[str, Any], secret: str | None, run_id: str
) -> dict[str, Any] | None:
    """The canary's outcome (None for a run without one): the sample, how many cells were
    checked, matched and skipped, the mismatches and the cells still to check. With
    ``secret`` a verdict that does not verify is left out (and said in ``unverified``)."""
    sample = sample_of(manifest)
    if not sample:
        return None
    mismatched, matched, skipped, pending, unverified = [], 0, 0, [], 0
    same = 0
    for key in sample:
        name = C.CANARY_FIELD + key
        entry = state.get(name)
        if secret and entry is not None:
            try:
                verify_entry(entry, secret, run_id, name)
            except SignatureError:
                entry, unverified = None, unverified + 1
        if not isinstance(entry, Mapping):
            pending.append(key)
            continue
        same += entry.get("same_process") is True
        if entry.get("match") is True:
            matched += 1
        elif entry.get("match") is None:
            skipped += 1
        else:
            where = f"{_where(entry.get('first'))} then {_where(entry.get('second'))}"
            mismatched.append(
                {
                    "cell": key,
                    "stored": str(entry.get("stored")),
                    "canary": str(entry.get("canary")),
                    "where": where,
                }
            )
    out = {
        "fraction": (manifest.get("options") or {}).get("canary", {}).get("fraction"),
        "cells": sample,
        "checked": len(sample) - len(pending),
        "matched": matched,
        "skipped": skipped,
        "mismatched": mismatched,
        "pending": pending,
        "same_process": same,
    }
    if unverified:
        out["unverified"] = unverified
    return out


def _where(info: Any) -> str:
    if not isinstance(info, Mapping):
        return "?"
    return f"{info.get('node')} pid {info.get('pid')}"


def line(info: Mapping[str, Any]) -> str:
    """The canary in one line (``status``, ``--watch``)."""
    bad = info.get("mismatched") or []
    text = (
        f"canary: {info.get('checked', 0)} of {len(info.get('cells') or [])} cells checked, "
        f"{info.get('matched', 0)} matched, {len(bad)} mismatched"
    )
    if info.get("skipped"):
        text += f", {info['skipped']} skipped"
    if info.get("same_process"):
        text += f" ({info['same_process']} re-run in the same process: no other was free)"
    if bad:
        text += "; " + ", ".join(f"{m['cell']} ({m['stored']} vs {m['canary']})" for m in bad[:3])
    return text
