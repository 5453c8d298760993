"""Crystallize's ``crystallize.experiments.experiment_graph`` path
(an alias, no objects of its own)."""

from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.model.artifact import Artifact
from crystallize_dist.model.artifacts import ArtifactPlugin
from crystallize_dist.model.experiment import Experiment
from crystallize_dist.model.graph import ExperimentGraph
from crystallize_dist.model.graph_yaml import find_experiments_root
from crystallize_dist.model.inputs import ExperimentInput
from crystallize_dist.model.result import (
    ExperimentMetrics,
    Result,
    TreatmentMetrics,
)
from crystallize_dist.model.treatment import Treatment

__all__ = [
    "BASELINE_CONDITION",
    "Artifact",
    "ArtifactPlugin",
    "Experiment",
    "ExperimentGraph",
    "ExperimentInput",
    "ExperimentMetrics",
    "Result",
    "Treatment",
    "TreatmentMetrics",
    "find_experiments_root",
]
