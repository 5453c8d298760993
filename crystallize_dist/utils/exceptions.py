"""Crystallize's ``crystallize.utils.exceptions`` path (an alias, no objects of its own)."""

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
