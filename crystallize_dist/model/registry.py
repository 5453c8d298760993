"""The datasource registry: data sources registered under a name, for the whole process."""

from __future__ import annotations

from crystallize_dist.errors import ValidationError
from crystallize_dist.model.datasource import DataSource

_REGISTRY: dict[str, DataSource] = {}


def register_datasource(name: str, datasource: DataSource) -> None:
    """Register ``datasource`` under ``name``; a duplicate name raises ValueError."""
    if name in _REGISTRY:
        raise ValidationError(f"datasource '{name}' is already registered")
    _REGISTRY[name] = datasource


def unregister_datasource(name: str) -> None:
    _REGISTRY.pop(name, None)


def get_datasource(name: str) -> DataSource:
    """The registered source ``name``; an unknown name raises KeyError listing the names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"datasource '{name}' is not registered; available: {sorted(_REGISTRY)}"
        ) from None


def list_datasources() -> list[str]:
    return sorted(_REGISTRY)
