"""Crystallize's ``crystallize.experiments.result_structs`` path
(an alias, no objects of its own)."""

from crystallize_dist.engine.result_aggregator import AggregateData
from crystallize_dist.model.result import (
    ExperimentMetrics,
    HypothesisResult,
    TreatmentMetrics,
)

__all__ = [
    "AggregateData",
    "ExperimentMetrics",
    "HypothesisResult",
    "TreatmentMetrics",
]
