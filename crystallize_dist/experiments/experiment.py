"""Crystallize's ``crystallize.experiments.experiment`` path. (compatibility alias)."""

from crystallize_dist.core.builder import ExperimentBuilder
from crystallize_dist.core.experiment import Experiment

__all__ = [
    "Experiment",
    "ExperimentBuilder",
]
