"""Crystallize's ``crystallize.datasources.datasource`` path. (compatibility alias)."""

from crystallize_dist.core.datasource import Artifact, DataSource, ExperimentInput

__all__ = [
    "Artifact",
    "DataSource",
    "ExperimentInput",
]
