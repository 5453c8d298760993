"""Crystallize's ``crystallize.utils.context`` path. (compatibility alias)."""

from crystallize_dist.model.context import (
    ArtifactLog,
    FrozenContext,
    FrozenMetrics,
    LoggingContext,
    standalone_context,
)

__all__ = [
    "ArtifactLog",
    "FrozenContext",
    "FrozenMetrics",
    "LoggingContext",
    "standalone_context",
]
