"""Crystallize's ``crystallize.experiments.result_structs`` path. (compatibility alias)."""

from crystallize_dist.model.result import ExperimentMetrics, HypothesisResult, TreatmentMetrics

__all__ = [
    "ExperimentMetrics",
    "HypothesisResult",
    "TreatmentMetrics",
]
