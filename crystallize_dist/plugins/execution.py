"""Crystallize's ``crystallize.plugins.execution`` path (an alias, no objects of its own)."""

from crystallize_dist.constants import VALID_EXECUTOR_TYPES
from crystallize_dist.engine.executors import (
    AsyncExecution,
    ParallelExecution,
    SerialExecution,
)
from crystallize_dist.model.plugins import BasePlugin

__all__ = [
    "VALID_EXECUTOR_TYPES",
    "AsyncExecution",
    "BasePlugin",
    "ParallelExecution",
    "SerialExecution",
]
