"""Crystallize's ``crystallize.experiments.treatment`` path (an alias, no objects of its own)."""

from crystallize_dist.model.context import FrozenContext
from crystallize_dist.model.treatment import Treatment

__all__ = [
    "FrozenContext",
    "Treatment",
]
