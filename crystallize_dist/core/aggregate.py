"""aggregate: fold cell records, in canonical order, into a Result.

Pure: the same plan and the same set of records give the same Result, whatever order the
records arrived in. Conditions are folded in plan order (baseline first) and replicates
ascending. A failed baseline cell drops every treatment cell of its replicate (Crystallize's
rule); error keys are ``baseline_rep_<r>`` and ``<treatment>_rep_<r>``.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.core.cell import STATUS_OK
from crystallize_dist.core.hypothesis import Hypothesis
from crystallize_dist.core.plan import RunPlan
from crystallize_dist.core.result import (
    ExperimentMetrics,
    HypothesisResult,
    Result,
    TreatmentMetrics,
    error_from_dict,
)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while many long-lived objects are made: with it on,
    each collection re-walks every record already kept, and loading 100,000 records takes
    several times longer. (Records hold no cycles; reference counting frees them.)"""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def index_records(
    records: Iterable[Mapping[str, Any]], *, keep_steps: bool = True
) -> dict[tuple[str, int], dict[str, Any]]:
    """Records keyed by (condition, replicate); the first record of a cell wins."""
    index: dict[tuple[str, int], dict[str, Any]] = {}
    with paused_gc():
        for rec in records:
            key = (rec["condition"], int(rec["replicate"]))
            if key not in index:
                kept = dict(rec)  # our copy: the aggregator trims it into the cell summary
                if not keep_steps:
                    kept.pop("steps", None)
                index[key] = kept
    return index


_SUMMARY_DROPS = (
    "condition",
    "replicate",
    "metrics",
    "error",
    "steps",
    "artifacts",
    "attempt",
    "tries",
)


def _summarize(rec: dict[str, Any]) -> dict[str, Any]:
    """Turn an indexed record (our copy) into its ``provenance["cells"]`` entry in place:
    seed, status, timing, attempts, duplicates, seeded libraries, drift and where it ran
    (host, node, pid - the versions stay in ``provenance["workers"]``)."""
    for key in _SUMMARY_DROPS:
        rec.pop(key, None)
    worker = rec.get("worker")
    if worker:
        rec["worker"] = {k: worker[k] for k in ("host", "node", "pid") if k in worker}
    return rec


def _extend(target: dict[str, list[Any]], metrics: Mapping[str, Sequence[Any]]) -> None:
    for key, values in metrics.items():
        target.setdefault(key, []).extend(values)


def _cell_error(rec: Mapping[str, Any], condition: str, replicate: int) -> BaseException:
    err = dict(rec.get("error") or {"type": "Exception", "message": "cell failed"})
    err.setdefault("condition", condition)
    err.setdefault("replicate", replicate)
    return error_from_dict(err)


def verify_hypotheses(
    hypotheses: Sequence[Hypothesis],
    baseline: Mapping[str, Any],
    treatments: Mapping[str, TreatmentMetrics],
) -> list[HypothesisResult]:
    """Verify each hypothesis against every treatment that has metrics, in list order."""
    out = []
    for hyp in hypotheses:
        results = {
            name: hyp.verify(baseline, tm.metrics) for name, tm in treatments.items() if tm.metrics
        }
        out.append(HypothesisResult(hyp.name, results, hyp.rank_treatments(results)))
    return out


def aggregate(
    plan: RunPlan,
    records: Iterable[Mapping[str, Any]],
    *,
    hypotheses: Sequence[Hypothesis] = (),
    meta: Mapping[str, Any] | None = None,
    loaded: Mapping[str, Mapping[str, list[Any]]] | None = None,
    keep_steps: bool = True,
    hypothesis_errors: str = "raise",
) -> Result:
    """Fold ``records`` into a Result (see module docstring).

    ``loaded`` holds metrics of conditions a resumed run did not re-run (merged after the
    fresh ones); ``meta`` is merged into the provenance (fingerprint, environment, run id).
    ``hypothesis_errors="record"`` stores a failing verifier in provenance instead of raising.
    """
    with paused_gc():
        return _aggregate(
            plan,
            records,
            hypotheses=hypotheses,
            meta=meta,
            loaded=loaded,
            keep_steps=keep_steps,
            hypothesis_errors=hypothesis_errors,
        )


def _aggregate(
    plan: RunPlan,
    records: Iterable[Mapping[str, Any]],
    *,
    hypotheses: Sequence[Hypothesis],
    meta: Mapping[str, Any] | None,
    loaded: Mapping[str, Mapping[str, list[Any]]] | None,
    keep_steps: bool,
    hypothesis_errors: str,
) -> Result:
    index = records if isinstance(records, dict) else index_records(records, keep_steps=keep_steps)
    baseline: dict[str, list[Any]] = {}
    treat: dict[str, dict[str, list[Any]]] = {t: {} for t in plan.treatments}
    seeds: dict[str, list[int]] = {}
    errors: dict[str, BaseException] = {}
    ctx_changes: dict[str, dict[int, Any]] = {}
    cells: dict[str, dict[str, Any]] = {}
    artifacts: dict[str, dict[str, Path]] = {}
    artifact_steps: dict[str, str] = {}
    missing: list[str] = []
    last_end = 0.0

    def take(cond: str, r: int, rec: Mapping[str, Any], target: dict[str, list[Any]]) -> None:
        _extend(target, rec.get("metrics", {}))
        seeds.setdefault(cond, []).append(int(rec["seed"]))
        if "steps" in rec:
            ctx_changes.setdefault(cond, {})[r] = rec["steps"]
        for art in rec.get("artifacts", ()):
            artifacts.setdefault(art["name"], {}).setdefault(cond, Path(art["path"]))
            artifact_steps.setdefault(art["name"], art.get("step", ""))

    for r in range(plan.replicates):
        for cond in plan.conditions:
            if cond in plan.skip:
                continue
            rec = index.get((cond, r))
            if rec is None:
                missing.append(f"{cond}:{r}")
                continue
            timing = rec.get("timing") or {}
            last_end = max(
                last_end, float(timing.get("started", 0)) + float(timing.get("duration", 0))
            )
            cells[f"{cond}:{r}"] = rec  # trimmed into its summary once everything is folded
        base_needed = BASELINE_CONDITION not in plan.skip
        brec = index.get((BASELINE_CONDITION, r)) if base_needed else None
        if base_needed:
            if brec is None:
                continue  # not finished yet: its treatments cannot be judged either
            if brec.get("status") != STATUS_OK:
                errors[f"baseline_rep_{r}"] = _cell_error(brec, BASELINE_CONDITION, r)
                continue
            take(BASELINE_CONDITION, r, brec, baseline)
        for cond in plan.treatments:
            if cond in plan.skip:
                continue
            rec = index.get((cond, r))
            if rec is None:
                continue
            if rec.get("status") != STATUS_OK:
                errors[f"{cond}_rep_{r}"] = _cell_error(rec, cond, r)
                continue
            take(cond, r, rec, treat[cond])

    for cond, values in (loaded or {}).items():
        _extend(baseline if cond == BASELINE_CONDITION else treat.setdefault(cond, {}), values)
    for rec in cells.values():
        _summarize(rec)

    treatments = {name: TreatmentMetrics(m) for name, m in treat.items()}
    provenance: dict[str, Any] = {
        "replicates": plan.replicates,
        "master_seed": plan.master_seed,
        "auto_seed": plan.auto_seed,
        "seeds": seeds,
        "plan_seeds": plan.seeds,
        "ctx_changes": ctx_changes,
        "cells": cells,
    }
    if missing:
        provenance["missing"] = missing
    provenance.update(meta or {})
    try:
        hyps = verify_hypotheses(hypotheses, baseline, treatments)
    except Exception as exc:
        if hypothesis_errors == "raise":
            raise
        hyps = []
        provenance["hypothesis_error"] = f"{type(exc).__name__}: {exc}"
    stamp = datetime.fromtimestamp(last_end, tz=timezone.utc).isoformat() if last_end else None
    result = Result(
        ExperimentMetrics(TreatmentMetrics(baseline), treatments, hyps),
        artifacts=artifacts,
        errors=errors,
        provenance=provenance,
        timestamp=stamp,
    )
    result.artifact_steps = artifact_steps
    return result
