"""Crystallize's ``crystallize.datasources.datasource`` path (an alias, no objects of its own)."""

from crystallize_dist.model.datasource import DataSource
from crystallize_dist.model.inputs import (
    ExperimentInput,
    MultiArtifactDataSource,
)

__all__ = [
    "DataSource",
    "ExperimentInput",
    "MultiArtifactDataSource",
]
