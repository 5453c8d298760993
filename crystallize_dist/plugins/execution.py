"""Crystallize's ``crystallize.plugins.execution`` path. (compatibility alias)."""

from crystallize_dist.engine.executors import (
    VALID_EXECUTOR_TYPES,
    AsyncExecution,
    ParallelExecution,
    SerialExecution,
)

__all__ = [
    "VALID_EXECUTOR_TYPES",
    "AsyncExecution",
    "ParallelExecution",
    "SerialExecution",
]
