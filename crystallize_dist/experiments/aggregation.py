"""Crystallize's ``crystallize.experiments.aggregation`` path (an alias, no objects of its own)."""

from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.engine.replicates import ReplicateResult
from crystallize_dist.engine.result_aggregator import (
    AggregateData,
    ResultAggregator,
)
from crystallize_dist.model.pipeline import Pipeline
from crystallize_dist.model.result import (
    ExperimentMetrics,
    Result,
)

__all__ = [
    "BASELINE_CONDITION",
    "AggregateData",
    "ExperimentMetrics",
    "Pipeline",
    "ReplicateResult",
    "Result",
    "ResultAggregator",
]
