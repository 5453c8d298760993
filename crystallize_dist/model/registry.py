"""The datasource registry: data sources registered under a name, for the whole process."""

from __future__ import annotations

from crystallize_dist.errors import ValidationError
from crystallize_dist.model.datasource import DataSource

_REGISTRY: dict[str, DataSource] = {}


def register_datasource(name: str, datasource: DataSource) -> None:
    """Register ``datasource`` under ``name``; a duplicate name raises ValueError."""
    if name in _REGISTRY:
        raise ValidationError(
            f"Datasource '{name}' is already registered; use another name or call "
            "unregister_datasource() first"
        )
    _REGISTRY[name] = datasource


def unregister_datasource(name: str) -> DataSource | None:
    """Remove ``name`` from the registry; returns the source it held (None if none)."""
    return _REGISTRY.pop(name, None)


def get_datasource(name: str) -> DataSource:
    """The registered source ``name``; an unknown name raises KeyError listing the names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"No datasource registered with name '{name}'. Available datasources: {list(_REGISTRY)}"
        ) from None


def list_datasources() -> list[str]:
    """The registered names, in the order they were registered."""
    return list(_REGISTRY)


def clear_registry() -> None:
    """Forget every registered data source (tests use it between cases)."""
    _REGISTRY.clear()
