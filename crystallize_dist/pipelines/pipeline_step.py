"""Crystallize's ``crystallize.pipelines.pipeline_step`` path (an alias, no objects of its own)."""

from crystallize_dist.model.context import FrozenContext
from crystallize_dist.model.step import PipelineStep
from crystallize_dist.model.step_cache import compute_hash

__all__ = [
    "FrozenContext",
    "PipelineStep",
    "compute_hash",
]
