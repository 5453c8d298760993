"""Crystallize's ``crystallize.plugins`` path. (compatibility alias)."""

from crystallize_dist.core.artifacts import ArtifactPlugin, load_all_metrics, load_metrics
from crystallize_dist.core.execution import AsyncExecution, ParallelExecution, SerialExecution
from crystallize_dist.core.plugins import BasePlugin, LoggingPlugin, SeedPlugin
from crystallize_dist.core.seeding import default_seed_function

__all__ = [
    "ArtifactPlugin",
    "AsyncExecution",
    "BasePlugin",
    "LoggingPlugin",
    "ParallelExecution",
    "SeedPlugin",
    "SerialExecution",
    "default_seed_function",
    "load_all_metrics",
    "load_metrics",
]
