"""The determinism canary (``submit --canary FRACTION``): a seeded sample of a run's cells
is run a second time by another process and each pair's outcome is compared.

- The sample is drawn at submit from the run's master seed (``plan_canary``) and kept in
  the manifest's options, so it is signed with it.
- Another process runs each sampled cell again once its record is stored: on workers, a
  canary message (a ``run_cells`` message with a ``canary`` field) that a worker hands back
  while the record is missing, or was written by the same process, or - when other workers
  are alive - by the same node (``canary_tasks``); with ``--local``, a fresh pool process.
- ``canary_check.check_cell`` compares the outcome of the stored record with the new one
  (the metrics digest of ``replay.outcome``, or the error type) and stores the verdict in
  the run state (field ``canary:<cell>``, signed with the secret when there is one).
- ``summary`` gathers the verdicts: ``status``, ``result.provenance["canary"]``, the report
  and the exit code of ``submit --wait`` / ``wait`` (3 on a mismatch) read it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from crystallize_dist import constants as C
from crystallize_dist.distributed.signing import verify_entry
from crystallize_dist.distributed.store.records import cell_key
from crystallize_dist.engine.plan import RunPlan
from crystallize_dist.errors import InvalidOptionError, SignatureError


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
