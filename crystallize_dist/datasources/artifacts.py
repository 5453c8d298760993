"""Crystallize's ``crystallize.datasources.artifacts`` path (an alias, no objects of its own)."""

from crystallize_dist.constants import (
    BASELINE_CONDITION,
    METADATA_FILENAME,
)
from crystallize_dist.errors import ContextMutationError
from crystallize_dist.model.artifact import (
    Artifact,
    default_loader,
    default_writer,
)
from crystallize_dist.model.artifacts import ArtifactPlugin
from crystallize_dist.model.context import (
    ArtifactLog,
    ArtifactRecord,
)
from crystallize_dist.model.datasource import DataSource

__all__ = [
    "BASELINE_CONDITION",
    "METADATA_FILENAME",
    "Artifact",
    "ArtifactLog",
    "ArtifactPlugin",
    "ArtifactRecord",
    "ContextMutationError",
    "DataSource",
    "default_loader",
    "default_writer",
]
