"""Crystallize's ``crystallize.pipelines.pipeline_step`` path. (compatibility alias)."""

from crystallize_dist.model.step import PipelineStep

__all__ = [
    "PipelineStep",
]
