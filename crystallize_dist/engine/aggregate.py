"""aggregate: fold cell records, in canonical order, into a Result.

Pure: the same plan and the same set of records give the same Result, whatever order the
records arrived in. Conditions are folded in plan order (baseline first) and replicates
ascending. A failed baseline cell drops every treatment cell of its replicate (Crystallize's
rule); error keys are ``baseline_rep_<r>`` and ``<treatment>_rep_<r>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from crystallize_dist.canonical import paused_gc
from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.engine.plan import RunPlan
from crystallize_dist.engine.records import STATUS_OK
from crystallize_dist.engine.summaries import CellSummaries
from crystallize_dist.model.hypothesis import Hypothesis, verify_hypotheses
from crystallize_dist.model.result import (
    ExperimentMetrics,
    Result,
    TreatmentMetrics,
    error_from_dict,
)

_NONE: Mapping[str, Any] = {}
#: the layout run before the first: it continues no replicate
_NO_RUN: list[Any] = [-1, -1, {}]


def _extend(target: dict[str, list[Any]], metrics: Mapping[str, Sequence[Any]]) -> None:
    for key, values in metrics.items():
        target.setdefault(key, []).extend(values)


def _cell_error(rec: Mapping[str, Any], condition: str, replicate: int) -> BaseException:
    err = dict(rec.get("error") or {"type": "Exception", "message": "cell failed"})
    err.setdefault("condition", condition)
    err.setdefault("replicate", replicate)
    return error_from_dict(err)


class Aggregator:
    """Folds a run's cell records into its Result, one replicate at a time in canonical
    order (conditions in plan order, replicates ascending) - whatever order they arrived in.

    ``fold(r, records)`` takes replicate r's records aligned with the conditions the plan
    runs (``plan.runs``): ``records[j]`` is the record of the j-th condition, or None (or
    past the end) where there is none. ``aggregate`` folds stored or returned records this
    way; SerialExecution folds each replicate as soon as it ran, so its records are freed
    right away instead of being kept until the end of the run.
    """

    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan
        self.baseline: dict[str, list[Any]] = {}
        self.treat: dict[str, dict[str, list[Any]]] = {t: {} for t in plan.treatments}
        self.seeds: dict[str, list[int]] = {cond: [] for cond in plan.conditions}
        self.errors: dict[str, BaseException] = {}
        self.ctx_changes: dict[str, dict[int, Any]] = {cond: {} for cond in plan.conditions}
        self.cells: dict[str, dict[str, Any]] = {}
        self.artifacts: dict[str, dict[str, Path]] = {}
        self.artifact_steps: dict[str, str] = {}
        self.missing: list[str] = []
        #: condition -> runs ``[first, stop, {metric: values per cell}]`` of consecutive
        #: replicates whose values went into the metrics (see ``model/cell_values.py``)
        self.layout: dict[str, list[list[Any]]] = {cond: [] for cond in plan.runs}
        #: the warning lines of first-replicate cells (see ``model/first_replicate.py``)
        self.warnings: list[str] = []
        self.summarize = CellSummaries()
        #: each condition the plan runs, in plan order, with where its metrics, seeds and
        #: step provenance and its value layout go
        self.targets = [
            (
                cond,
                self.baseline if cond == BASELINE_CONDITION else self.treat[cond],
                self.seeds[cond],
                self.ctx_changes[cond],
                self.layout[cond],
            )
            for cond in plan.runs
        ]

    def fold(
        self,
        r: int,
        records: Sequence[Mapping[str, Any] | None],
        *,
        fresh: bool = False,
        summaries: Sequence[dict[str, Any] | None] | None = None,
    ) -> None:
        """Fold replicate ``r`` (see the class docstring); ``fresh`` records were just made
        by the cell path in this process (their summaries skip the checks stored ones need);
        ``summaries``, when given, are the records' summaries made already."""
        # a failed or unfinished baseline drops its replicate's treatments (Crystallize's
        # rule); the cells still get their summaries. After a failed baseline the treatment
        # cells are not needed, so they are not missing either (in-process runs skip them)
        usable = True
        dropped = False
        n = len(records)
        j = 0
        cells = self.cells
        summarize = self.summarize.take if fresh else self.summarize
        for cond, target, cond_seeds, cond_steps, runs in self.targets:
            rec = records[j] if j < n else None
            j += 1
            if rec is None:
                if not dropped:
                    self.missing.append(f"{cond}:{r}")
                if cond == BASELINE_CONDITION:
                    usable = False
                continue
            summary = None if summaries is None else summaries[j - 1]
            cells[f"{cond}:{r}"] = summarize(rec) if summary is None else summary
            if "warnings" in rec:
                self.note(rec["warnings"])
            if not usable:
                continue
            if rec.get("status") != STATUS_OK:
                self.errors[f"{cond}_rep_{r}"] = _cell_error(rec, cond, r)
                if cond == BASELINE_CONDITION:
                    usable, dropped = False, True
                continue
            metrics = rec.get("metrics", _NONE)
            last = runs[-1] if runs else _NO_RUN
            same = last[1] == r and len(metrics) == len(last[2])
            for key, values in metrics.items():
                if key in target:
                    target[key].extend(values)
                else:
                    target[key] = list(values)
                if same and last[2].get(key) != len(values):
                    same = False
            if same:
                last[1] = r + 1
            else:
                runs.append([r, r + 1, {key: len(values) for key, values in metrics.items()}])
            seed = rec["seed"]
            if type(seed) is int:
                cond_seeds.append(seed)
            elif seed is not None:  # None: a record made from Crystallize's fields
                cond_seeds.append(int(seed))
            steps = rec.get("steps")
            if steps is not None:
                cond_steps[r] = steps
            if rec.get("artifacts"):
                for art in rec["artifacts"]:
                    self.artifacts.setdefault(art["name"], {}).setdefault(cond, Path(art["path"]))
                    self.artifact_steps.setdefault(art["name"], art.get("step", ""))

    def note(self, lines: Any) -> None:
        """Keep a record's warning lines (text only, each once)."""
        if isinstance(lines, list):
            self.warnings += [w for w in lines if type(w) is str and w not in self.warnings]

    def absorb(self, part: Aggregator) -> None:
        """Take in ``part``: an Aggregator of the same plan that folded the replicates that
        come next in canonical order (a process worker's chunk), as if they were folded
        here. Per-cell entries move over in C (dict and list updates), not record by
        record."""
        for cond, target, cond_seeds, cond_steps, runs in self.targets:
            source = part.baseline if cond == BASELINE_CONDITION else part.treat[cond]
            theirs = part.layout[cond]
            if runs and theirs and runs[-1][1] == theirs[0][0] and runs[-1][2] == theirs[0][2]:
                runs[-1][1] = theirs[0][1]
                theirs = theirs[1:]
            runs.extend(theirs)
            for key, values in source.items():
                if key in target:
                    target[key].extend(values)
                else:
                    target[key] = values
            cond_seeds.extend(part.seeds[cond])
            cond_steps.update(part.ctx_changes[cond])
        self.cells.update(part.cells)
        self.errors.update(part.errors)
        self.missing.extend(part.missing)
        self.note(part.warnings)
        for name, by_cond in part.artifacts.items():
            mine = self.artifacts.setdefault(name, {})
            for cond, path in by_cond.items():
                mine.setdefault(cond, path)
        for name, step in part.artifact_steps.items():
            self.artifact_steps.setdefault(name, step)
        if part.summarize.last_end > self.summarize.last_end:
            self.summarize.last_end = part.summarize.last_end

    def result(
        self,
        *,
        hypotheses: Sequence[Hypothesis] = (),
        meta: Mapping[str, Any] | None = None,
        loaded: Mapping[str, Mapping[str, list[Any]]] | None = None,
        hypothesis_errors: str = "raise",
    ) -> Result:
        """The Result of everything folded (see ``aggregate`` for the arguments)."""
        with paused_gc():
            return self._result(hypotheses, meta, loaded, hypothesis_errors)

    def _result(
        self,
        hypotheses: Sequence[Hypothesis],
        meta: Mapping[str, Any] | None,
        loaded: Mapping[str, Mapping[str, list[Any]]] | None,
        hypothesis_errors: str,
    ) -> Result:
        plan, baseline, treat = self.plan, self.baseline, self.treat
        # conditions without any seed (or step provenance) are left out of the provenance
        seeds = {cond: values for cond, values in self.seeds.items() if values}
        ctx_changes = {cond: steps for cond, steps in self.ctx_changes.items() if steps}
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
            "cells": self.cells,
            "value_layout": {cond: runs for cond, runs in self.layout.items() if runs},
        }
        if self.missing:
            provenance["missing"] = self.missing
        if self.warnings:
            provenance["warnings"] = self.warnings
        provenance.update(meta or {})
        try:
            hyps = verify_hypotheses(hypotheses, baseline, treatments)
        except Exception as exc:
            if hypothesis_errors == "raise":
                raise
            hyps = []
            provenance["hypothesis_error"] = f"{type(exc).__name__}: {exc}"
        last_end = self.summarize.last_end
        stamp = datetime.fromtimestamp(last_end, tz=timezone.utc).isoformat() if last_end else None
        result = Result(
            ExperimentMetrics(TreatmentMetrics(baseline), treatments, hyps),
            artifacts=self.artifacts,
            errors=self.errors,
            provenance=provenance,
            timestamp=stamp,
        )
        result.artifact_steps = self.artifact_steps
        return result


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
    return aggregate_into(plan, records, keep_steps=keep_steps).result(
        hypotheses=hypotheses, meta=meta, loaded=loaded, hypothesis_errors=hypothesis_errors
    )


def aggregate_into(
    plan: RunPlan, records: Iterable[Mapping[str, Any]], *, keep_steps: bool = True
) -> Aggregator:
    """An Aggregator with ``records`` folded in canonical order (the first record of a cell
    wins; see ``aggregate``)."""
    from crystallize_dist.engine.gathering import gather

    return gather(Aggregator(plan), records, keep_steps=keep_steps)
