"""Crystallize's ``ResultAggregator``: ReplicateResults grouped into an AggregateData, and a
Result built from it.

The engine's own runs fold cell records with ``engine.aggregate.Aggregator`` (canonical
order, provenance per cell); this is the interface code written for Crystallize calls with
a list of ReplicateResults, one per replicate in order, read through their fields as they
are (errors stay the exception objects they hold).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.model.result import ExperimentMetrics, Result

if TYPE_CHECKING:
    from crystallize_dist.engine.replicates import ReplicateResult
    from crystallize_dist.model.pipeline import Pipeline


@dataclass
class AggregateData:
    """Everything of a run's replicates, grouped: metrics and seeds per condition, step
    provenance per condition and replicate, errors by key."""

    baseline_metrics: dict[str, list[Any]]
    treatment_metrics_dict: dict[str, dict[str, list[Any]]]
    baseline_seeds: list[int]
    treatment_seeds_agg: dict[str, list[int]]
    provenance_runs: dict[str, dict[int, list[Mapping[str, Any]]]]
    errors: dict[str, BaseException]


def _flatten(samples: Sequence[Mapping[str, Sequence[Any]]]) -> dict[str, list[Any]]:
    """Each metric's values over the samples, in order, in one flat list."""
    out: dict[str, list[Any]] = {}
    for sample in samples:
        for metric, values in sample.items():
            out.setdefault(metric, []).extend(values)
    return out


class ResultAggregator:
    """``ResultAggregator(pipeline, replicates)``: ``aggregate_results`` groups
    ReplicateResults, ``build_result`` makes the Result."""

    def __init__(self, pipeline: Pipeline, replicates: int) -> None:
        self.pipeline = pipeline
        self.replicates = replicates

    def aggregate_results(self, results_list: Sequence[ReplicateResult]) -> AggregateData:
        """The replicates' metrics, seeds, provenance and errors, grouped by condition (a
        replicate without baseline metrics adds no baseline values)."""
        baseline: list[Mapping[str, Any]] = []
        treatments: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        baseline_seeds: list[int] = []
        treatment_seeds: dict[str, list[int]] = defaultdict(list)
        provenance: dict[str, dict[int, list[Mapping[str, Any]]]] = defaultdict(dict)
        errors: dict[str, BaseException] = {}
        for rep, res in enumerate(results_list):
            if res.baseline_metrics is not None:
                baseline.append(res.baseline_metrics)
            if res.baseline_seed is not None:
                baseline_seeds.append(res.baseline_seed)
            for name, sample in res.treatment_metrics.items():
                treatments[name].append(sample)
            for name, seed in res.treatment_seeds.items():
                treatment_seeds[name].append(seed)
            for name, steps in res.provenance.items():
                provenance[name][rep] = steps
            errors.update(res.errors)
        return AggregateData(
            baseline_metrics=_flatten(baseline),
            treatment_metrics_dict={name: _flatten(s) for name, s in treatments.items()},
            baseline_seeds=baseline_seeds,
            treatment_seeds_agg=treatment_seeds,
            provenance_runs=provenance,
            errors=errors,
        )

    def build_result(self, metrics: ExperimentMetrics, aggregate: AggregateData) -> Result:
        """The Result of ``metrics``, with ``aggregate``'s errors, seeds and provenance."""
        provenance = {
            "pipeline_signature": self.pipeline.signature(),
            "replicates": self.replicates,
            "seeds": {
                BASELINE_CONDITION: aggregate.baseline_seeds,
                **aggregate.treatment_seeds_agg,
            },
            "ctx_changes": dict(aggregate.provenance_runs),
        }
        return Result(metrics=metrics, errors=aggregate.errors, provenance=provenance)
