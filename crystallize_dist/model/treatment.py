"""Treatment: a named change applied to a condition's context before it runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crystallize_dist.model.context import FrozenContext


class _MappingApplier:
    """Adds each item of a mapping to the context (picklable, unlike a lambda)."""

    def __init__(self, items: Mapping[str, Any]) -> None:
        self.items = dict(items)

    def __call__(self, ctx: FrozenContext) -> None:
        for key, value in self.items.items():
            ctx.add(key, value)


class Treatment:
    """``Treatment(name, apply)``: ``apply`` is a callable ``fn(ctx)`` or a mapping of keys."""

    def __init__(
        self, name: str, apply: Callable[[FrozenContext], Any] | Mapping[str, Any]
    ) -> None:
        self.name = name
        if callable(apply):
            self._fn: Callable[[FrozenContext], Any] = apply
            self._map: dict[str, Any] | None = None
        else:
            self._map = dict(apply)
            self._fn = _MappingApplier(self._map)

    def apply(self, ctx: FrozenContext) -> None:
        """Apply the treatment to ``ctx`` (adding keys; existing keys raise)."""
        self._fn(ctx)

    @property
    def apply_map(self) -> dict[str, Any]:
        """A copy of the mapping this treatment adds, or ``{}`` for a callable."""
        return dict(self._map) if self._map is not None else {}

    @property
    def apply_fn(self) -> Callable[[FrozenContext], Any]:
        return self._fn

    def __repr__(self) -> str:
        return f"Treatment(name='{self.name}')"
