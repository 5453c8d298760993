"""Crystallize's ``crystallize.datasources.registry`` path (an alias, no objects of its own)."""

from crystallize_dist.model.registry import (
    clear_registry,
    get_datasource,
    list_datasources,
    register_datasource,
    unregister_datasource,
)

__all__ = [
    "clear_registry",
    "get_datasource",
    "list_datasources",
    "register_datasource",
    "unregister_datasource",
]
