"""Crystallize's ``crystallize.experiments.result`` path. (compatibility alias)."""

from crystallize_dist.core.result import Result

__all__ = [
    "Result",
]
