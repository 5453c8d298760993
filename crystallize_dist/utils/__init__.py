"""Crystallize's ``crystallize.utils`` path (an alias, no objects of its own)."""

from crystallize_dist.errors import (
    ContextMutationError,
    MissingMetricError,
    PipelineExecutionError,
    ValidationError,
)
from crystallize_dist.model.context import (
    FrozenContext,
    LoggingContext,
)
from crystallize_dist.model.injection import inject_from_ctx
from crystallize_dist.model.step_cache import (
    compute_hash,
    load_cache,
    store_cache,
)

__all__ = [
    "ContextMutationError",
    "FrozenContext",
    "LoggingContext",
    "MissingMetricError",
    "PipelineExecutionError",
    "ValidationError",
    "compute_hash",
    "inject_from_ctx",
    "load_cache",
    "store_cache",
]
