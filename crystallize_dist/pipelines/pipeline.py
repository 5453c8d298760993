"""Crystallize's ``crystallize.pipelines.pipeline`` path. (compatibility alias)."""

from crystallize_dist.model.pipeline import Pipeline

__all__ = [
    "Pipeline",
]
