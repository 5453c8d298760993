"""Crystallize's ``crystallize.experiments.optimizers`` path (an alias, no objects of its own)."""

from crystallize_dist.model.optimizers import (
    BaseOptimizer,
    Objective,
)
from crystallize_dist.model.treatment import Treatment

__all__ = [
    "BaseOptimizer",
    "Objective",
    "Treatment",
]
