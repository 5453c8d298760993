"""Crystallize's ``crystallize.plugins.plugins`` path (an alias, no objects of its own)."""

from crystallize_dist.constants import (
    BASELINE_CONDITION,
    CONDITION_KEY,
    METADATA_FILENAME,
    REPLICATE_KEY,
    SEED_USED_KEY,
)
from crystallize_dist.model.artifacts import ArtifactPlugin
from crystallize_dist.model.plugins import (
    BasePlugin,
    LoggingPlugin,
    SeedPlugin,
)
from crystallize_dist.model.seeding import default_seed_function

__all__ = [
    "BASELINE_CONDITION",
    "CONDITION_KEY",
    "METADATA_FILENAME",
    "REPLICATE_KEY",
    "SEED_USED_KEY",
    "ArtifactPlugin",
    "BasePlugin",
    "LoggingPlugin",
    "SeedPlugin",
    "default_seed_function",
]
