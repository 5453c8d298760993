"""Crystallize's ``crystallize.datasources`` path (an alias, no objects of its own)."""

from crystallize_dist.model.artifact import Artifact
from crystallize_dist.model.context import ArtifactLog

__all__ = [
    "Artifact",
    "ArtifactLog",
]
