"""Crystallize's ``crystallize.plugins`` path. (compatibility alias)."""

from crystallize_dist.engine.executors import AsyncExecution, ParallelExecution, SerialExecution
from crystallize_dist.model.artifact_files import load_all_metrics, load_metrics
from crystallize_dist.model.artifacts import ArtifactPlugin
from crystallize_dist.model.plugins import BasePlugin, LoggingPlugin, SeedPlugin
from crystallize_dist.model.seeding import default_seed_function

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
