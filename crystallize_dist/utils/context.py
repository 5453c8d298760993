"""Crystallize's ``crystallize.utils.context`` path (an alias, no objects of its own)."""

from crystallize_dist.errors import ContextMutationError
from crystallize_dist.model.context import (
    ArtifactLog,
    FrozenContext,
    FrozenMetrics,
    LoggingContext,
    standalone_context,
)

__all__ = [
    "ArtifactLog",
    "ContextMutationError",
    "FrozenContext",
    "FrozenMetrics",
    "LoggingContext",
    "standalone_context",
]
