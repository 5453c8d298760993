"""Crystallize's ``crystallize.utils.cache`` path (an alias, no objects of its own)."""

from crystallize_dist.model.step_cache import (
    CACHE_DIR,
    cache_path,
    compute_hash,
    load_cache,
    store_cache,
)

__all__ = [
    "CACHE_DIR",
    "cache_path",
    "compute_hash",
    "load_cache",
    "store_cache",
]
