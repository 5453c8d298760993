"""Crystallize's ``crystallize.pipelines.pipeline`` path (an alias, no objects of its own)."""

from crystallize_dist.errors import PipelineExecutionError
from crystallize_dist.model.context import (
    FrozenContext,
    LoggingContext,
)
from crystallize_dist.model.pipeline import Pipeline
from crystallize_dist.model.step import PipelineStep
from crystallize_dist.model.step_cache import (
    compute_hash,
    load_cache,
    store_cache,
)

__all__ = [
    "FrozenContext",
    "LoggingContext",
    "Pipeline",
    "PipelineExecutionError",
    "PipelineStep",
    "compute_hash",
    "load_cache",
    "store_cache",
]
