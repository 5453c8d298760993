"""Checking one cell of the canary's sample: run it again in this process, compare its
outcome with the stored record's and store the verdict (see ``canary.py``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.distributed.deadline import cell_deadline
from crystallize_dist.distributed.replay import outcome
from crystallize_dist.distributed.runner import CellRunner
from crystallize_dist.distributed.signing import sign_entry
from crystallize_dist.distributed.store.records import cell_key
from crystallize_dist.engine.cell import execute_cell
from crystallize_dist.engine.plan import Cell

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
