"""Crystallize's ``crystallize.experiments.experiment_builder`` path
(an alias, no objects of its own)."""

from crystallize_dist.model.artifact import Artifact
from crystallize_dist.model.builder import ExperimentBuilder
from crystallize_dist.model.datasource import DataSource
from crystallize_dist.model.experiment import Experiment
from crystallize_dist.model.hypothesis import Hypothesis
from crystallize_dist.model.pipeline import Pipeline
from crystallize_dist.model.plugins import BasePlugin
from crystallize_dist.model.step import PipelineStep
from crystallize_dist.model.treatment import Treatment

__all__ = [
    "Artifact",
    "BasePlugin",
    "DataSource",
    "Experiment",
    "ExperimentBuilder",
    "Hypothesis",
    "Pipeline",
    "PipelineStep",
    "Treatment",
]
