"""Crystallize's ``crystallize.experiments.hypothesis`` path (an alias, no objects of its own)."""

from crystallize_dist.errors import MissingMetricError
from crystallize_dist.model.hypothesis import (
    Hypothesis,
    rank_by_p_value,
)

__all__ = [
    "Hypothesis",
    "MissingMetricError",
    "rank_by_p_value",
]
