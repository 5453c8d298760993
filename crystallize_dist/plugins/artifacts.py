"""Crystallize's ``crystallize.plugins.artifacts`` path (an alias, no objects of its own)."""

from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.model.artifact_files import (
    load_all_metrics,
    load_metrics,
)

__all__ = [
    "BASELINE_CONDITION",
    "load_all_metrics",
    "load_metrics",
]
