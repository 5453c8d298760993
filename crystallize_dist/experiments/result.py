"""Crystallize's ``crystallize.experiments.result`` path. (compatibility alias)."""

from crystallize_dist.model.result import Result

__all__ = [
    "Result",
]
