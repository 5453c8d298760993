"""Crystallize's ``crystallize.plugins.plugins`` path. (compatibility alias)."""

from crystallize_dist.model.artifacts import ArtifactPlugin
from crystallize_dist.model.plugins import BasePlugin, LoggingPlugin, SeedPlugin
from crystallize_dist.model.seeding import default_seed_function

__all__ = [
    "ArtifactPlugin",
    "BasePlugin",
    "LoggingPlugin",
    "SeedPlugin",
    "default_seed_function",
]
