"""Crystallize's ``crystallize.utils.exceptions`` path. (compatibility alias)."""

from crystallize_dist.errors import (
    ContextMutationError,
    CrystallizeError,
    MissingMetricError,
    PipelineExecutionError,
    ValidationError,
)

__all__ = [
    "ContextMutationError",
    "CrystallizeError",
    "MissingMetricError",
    "PipelineExecutionError",
    "ValidationError",
]
