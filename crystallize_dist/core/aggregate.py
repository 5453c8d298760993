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
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from crystallize_dist.core.runspec import RunSpec


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
) -> dict[tuple[str, int], Mapping[str, Any]]:
    """Records keyed by (condition, replicate); the first record of a cell wins. Records
    are not changed (without ``keep_steps``, a copy without its step provenance is kept)."""
    index: dict[tuple[str, int], Mapping[str, Any]] = {}
    with paused_gc():
        for rec in records:
            key = (rec["condition"], int(rec["replicate"]))
            if key not in index:
                if not keep_steps and "steps" in rec:
                    rec = {k: v for k, v in rec.items() if k != "steps"}
                index[key] = rec
    return index


_SUMMARY_DROPS = frozenset(
    {"condition", "replicate", "metrics", "error", "steps", "artifacts", "attempt", "tries"}
)
_WORKER_KEYS = ("host", "node", "pid")
#: the keys of a record as run_cell makes it (a record from a store has a few more)
_CELL_RECORD = frozenset(
    {
        "condition",
        "replicate",
        "seed",
        "status",
        "metrics",
        "error",
        "seeded",
        "steps",
        "artifacts",
        "timing",
        "worker",
    }
)


class _Summaries:
    """Makes each record's ``provenance["cells"]`` entry: seed, status, timing, attempts,
    duplicates, seeded libraries, drift and where it ran (host, node, pid - the versions
    stay in ``provenance["workers"]``), and notes when the last cell ended. Records of one
    worker usually share one stamp, so which of its keys to keep is worked out once per
    stamp."""

    def __init__(self) -> None:
        self._stamp_in: Any = None
        self._stamp_out: dict[str, Any] = {}
        self.last_end = 0.0

    def __call__(self, rec: Mapping[str, Any]) -> dict[str, Any]:
        if rec.keys() == _CELL_RECORD:  # as run_cell made it: the summary's keys are known
            timing = rec["timing"]
            out = {
                "seed": rec["seed"],
                "status": rec["status"],
                "seeded": rec["seeded"],
                "timing": timing,
            }
            worker = rec["worker"]
        else:
            out = {k: v for k, v in rec.items() if k not in _SUMMARY_DROPS}
            worker = out.pop("worker", None)
            timing = out.get("timing")
        if timing:
            try:
                end = float(timing["started"]) + float(timing["duration"])
            except (KeyError, TypeError, ValueError):
                end = 0.0
            if end > self.last_end:
                self.last_end = end
        if worker:
            if worker is not self._stamp_in and worker != self._stamp_in:
                self._stamp_in = worker
                self._stamp_out = {k: worker[k] for k in _WORKER_KEYS if k in worker}
            out["worker"] = dict(self._stamp_out)  # each cell its own (they may be edited)
        return out


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
    seeds: dict[str, list[int]] = {cond: [] for cond in plan.conditions}
    errors: dict[str, BaseException] = {}
    ctx_changes: dict[str, dict[int, Any]] = {cond: {} for cond in plan.conditions}
    cells: dict[str, dict[str, Any]] = {}
    artifacts: dict[str, dict[str, Path]] = {}
    artifact_steps: dict[str, str] = {}
    missing: list[str] = []
    summarize = _Summaries()
    #: each condition in plan order (without resumed ones), with where its metrics, seeds
    #: and step provenance go
    targets = [
        (
            cond,
            baseline if cond == BASELINE_CONDITION else treat[cond],
            seeds[cond],
            ctx_changes[cond],
        )
        for cond in plan.conditions
        if cond not in plan.skip
    ]

    for r in range(plan.replicates):
        # a failed or unfinished baseline drops its replicate's treatments (Crystallize's
        # rule); the cells still get their summaries. After a failed baseline the treatment
        # cells are not needed, so they are not missing either (in-process runs skip them)
        usable, dropped = True, False
        for cond, target, cond_seeds, cond_steps in targets:
            rec = index.get((cond, r))
            if rec is None:
                if not dropped:
                    missing.append(f"{cond}:{r}")
                if cond == BASELINE_CONDITION:
                    usable = False
                continue
            cells[f"{cond}:{r}"] = summarize(rec)
            if not usable:
                continue
            if rec.get("status") != STATUS_OK:
                errors[f"{cond}_rep_{r}"] = _cell_error(rec, cond, r)
                if cond == BASELINE_CONDITION:
                    usable, dropped = False, True
                continue
            for key, values in rec.get("metrics", {}).items():
                if key in target:
                    target[key].extend(values)
                else:
                    target[key] = list(values)
            seed = rec["seed"]
            cond_seeds.append(seed if type(seed) is int else int(seed))
            if "steps" in rec:
                cond_steps[r] = rec["steps"]
            if rec.get("artifacts"):
                for art in rec["artifacts"]:
                    artifacts.setdefault(art["name"], {}).setdefault(cond, Path(art["path"]))
                    artifact_steps.setdefault(art["name"], art.get("step", ""))

    # conditions without any seed (or step provenance) are left out, as before
    seeds = {cond: values for cond, values in seeds.items() if values}
    ctx_changes = {cond: steps for cond, steps in ctx_changes.items() if steps}
    for cond, values in (loaded or {}).items():
        _extend(baseline if cond == BASELINE_CONDITION else treat.setdefault(cond, {}), values)

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
    last_end = summarize.last_end
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


def loaded_result(spec: RunSpec, signature: str) -> Result:
    """The Result of a resumed run that found every condition done: the stored metrics,
    hypotheses verified on them, no seeds (nothing ran)."""
    baseline = spec.loaded.get(BASELINE_CONDITION, {})
    treatments = {t.name: TreatmentMetrics(spec.loaded.get(t.name, {})) for t in spec.treatments}
    hyps = verify_hypotheses(spec.hypotheses, baseline, treatments)
    return Result(
        ExperimentMetrics(TreatmentMetrics(baseline), treatments, hyps),
        provenance={
            "replicates": spec.plan.replicates,
            "seeds": {},
            "pipeline_signature": signature,
        },
    )
