"""Crystallize's ``crystallize.pipelines`` path (an alias, no objects of its own)."""

from crystallize_dist.model.pipeline import Pipeline
from crystallize_dist.model.step import PipelineStep

__all__ = [
    "Pipeline",
    "PipelineStep",
]
