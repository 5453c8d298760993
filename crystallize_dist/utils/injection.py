"""Crystallize's ``crystallize.utils.injection`` path (an alias, no objects of its own)."""

from crystallize_dist.model.artifact import Artifact
from crystallize_dist.model.context import FrozenContext
from crystallize_dist.model.injection import inject_from_ctx

__all__ = [
    "Artifact",
    "FrozenContext",
    "inject_from_ctx",
]
