"""Treatment: a named change applied to a condition's context before it runs.

A treatment's name names a condition: its cell records (``<name>:<replicate>``), its error
keys and its artifact folders. So it may not be ``baseline`` (the condition run without a
treatment), nor collide with another treatment's name, nor hold what a record key or a
folder name cannot (``/``, ``\\``, control characters, ``.`` or ``..``). Names are compared
by ``name_key``: case-insensitively, in one Unicode normal form and with surrounding spaces
left out, as a table shows them and as a case-insensitive file system compares artifact
folders.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.errors import ValidationError

if TYPE_CHECKING:
    from crystallize_dist.model.context import FrozenContext


def name_key(name: str) -> str:
    """What two treatment names are compared by: ``name`` in Unicode normal form NFKC,
    without surrounding spaces, case-folded."""
    return unicodedata.normalize("NFKC", name).strip().casefold()


def check_treatment_name(name: Any) -> str:
    """``name`` when it can name a treatment (see the module docstring), else a
    ValidationError naming it."""
    if not isinstance(name, str):
        raise ValidationError(
            f"a treatment name must be a string, got {type(name).__name__} {name!r}"
        )
    if not name.strip():
        raise ValidationError(f"a treatment name must not be empty, got {name!r}")
    if name_key(name) == BASELINE_CONDITION:
        raise ValidationError(
            f"a treatment may not be named {name!r}: 'baseline' is the condition run without "
            "a treatment; give the treatment another name"
        )
    bad = next((c for c in name if c in "/\\" or unicodedata.category(c) == "Cc"), None)
    if bad is not None or name in (".", ".."):
        shown = repr(bad) if bad is not None else repr(name)
        raise ValidationError(
            f"treatment name {name!r} cannot name a cell record or an artifact folder "
            f"(it holds {shown}); use letters, digits, spaces and punctuation other than / and \\"
        )
    return name


def check_treatments(treatments: Iterable[Treatment]) -> list[Treatment]:
    """``treatments`` as a list when every name is valid and no two collide (compared by
    ``name_key``), else a ValidationError naming both."""
    out = list(treatments)
    seen: dict[str, str] = {}
    for treatment in out:
        name = check_treatment_name(treatment.name)
        other = seen.get(name_key(name))
        if other is not None:
            raise ValidationError(
                f"treatments {other!r} and {name!r} collide: each condition needs its own "
                "name (names are compared case-insensitively, without surrounding spaces)"
            )
        seen[name_key(name)] = name
    return out


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
        self.name = check_treatment_name(name)
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
