"""Crystallize's ``crystallize.experiments`` path (an alias, no objects of its own)."""

from crystallize_dist.engine.replicates import ReplicateResult
from crystallize_dist.engine.result_aggregator import AggregateData
from crystallize_dist.model.experiment import Experiment
from crystallize_dist.model.graph import ExperimentGraph
from crystallize_dist.model.hypothesis import Hypothesis
from crystallize_dist.model.optimizers import (
    BaseOptimizer,
    Objective,
)
from crystallize_dist.model.result import (
    ExperimentMetrics,
    HypothesisResult,
    Result,
    TreatmentMetrics,
)
from crystallize_dist.model.treatment import Treatment

__all__ = [
    "AggregateData",
    "BaseOptimizer",
    "Experiment",
    "ExperimentGraph",
    "ExperimentMetrics",
    "Hypothesis",
    "HypothesisResult",
    "Objective",
    "ReplicateResult",
    "Result",
    "Treatment",
    "TreatmentMetrics",
]
