"""Crystallize's ``crystallize.datasources.registry`` path. (compatibility alias)."""

from crystallize_dist.model.registry import (
    get_datasource,
    list_datasources,
    register_datasource,
    unregister_datasource,
)

__all__ = [
    "get_datasource",
    "list_datasources",
    "register_datasource",
    "unregister_datasource",
]
