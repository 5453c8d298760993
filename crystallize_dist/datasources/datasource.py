"""Crystallize's ``crystallize.datasources.datasource`` path. (compatibility alias)."""

from crystallize_dist.model.artifact import Artifact
from crystallize_dist.model.datasource import DataSource
from crystallize_dist.model.inputs import ExperimentInput

__all__ = [
    "Artifact",
    "DataSource",
    "ExperimentInput",
]
