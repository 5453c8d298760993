"""Crystallize's ``crystallize.utils.constants`` path (an alias, no objects of its own)."""

from crystallize_dist.constants import (
    BASELINE_CONDITION,
    CONDITION_KEY,
    METADATA_FILENAME,
    REPLICATE_KEY,
    SEED_USED_KEY,
)

__all__ = [
    "BASELINE_CONDITION",
    "CONDITION_KEY",
    "METADATA_FILENAME",
    "REPLICATE_KEY",
    "SEED_USED_KEY",
]
