"""Crystallize's ``crystallize.experiments.result`` path (an alias, no objects of its own)."""

from crystallize_dist.model.result import (
    ExperimentMetrics,
    HypothesisResult,
    Result,
)

__all__ = [
    "ExperimentMetrics",
    "HypothesisResult",
    "Result",
]
