"""Crystallize's ``crystallize.plugins`` path (an alias, no objects of its own)."""

from crystallize_dist.engine.executors import (
    AsyncExecution,
    ParallelExecution,
    SerialExecution,
)
from crystallize_dist.model.artifact_files import (
    load_all_metrics,
    load_metrics,
)
from crystallize_dist.model.artifacts import ArtifactPlugin
from crystallize_dist.model.plugins import (
    BasePlugin,
    LoggingPlugin,
    SeedPlugin,
)

__all__ = [
    "ArtifactPlugin",
    "AsyncExecution",
    "BasePlugin",
    "LoggingPlugin",
    "ParallelExecution",
    "SeedPlugin",
    "SerialExecution",
    "load_all_metrics",
    "load_metrics",
]
