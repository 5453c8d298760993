"""The immutable per-condition context: keys, metrics, artifacts and per-cell generators."""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from crystallize_dist.constants import CONDITION_KEY, REPLICATE_KEY
from crystallize_dist.errors import ContextMutationError

_LOGGER_NAME = "crystallize"
_LOGGER = logging.getLogger(_LOGGER_NAME)


class FrozenMetrics:
    """Append-only metric values (and their tags) recorded by one condition."""

    def __init__(self) -> None:
        #: key -> the list of its values: the live store, not a copy (a finished cell's
        #: record takes it over as it is; do not change it)
        self.lists: dict[str, list[Any]] = {}
        self._values = self.lists
        #: (index of the value, its tags) per key, for values added with tags only
        self._tags: dict[str, list[tuple[int, dict[str, Any]]]] = {}

    def add(self, key: str, value: Any, tags: Mapping[str, Any] | None = None) -> None:
        """Append ``value`` (and its tags) under ``key``."""
        values = self._values.get(key)
        if values is None:
            self._values[key] = [value]
        else:
            values.append(value)
        if tags:
            index = len(self._values[key]) - 1
            self._tags.setdefault(key, []).append((index, dict(tags)))

    def __getitem__(self, key: str) -> tuple[Any, ...]:
        return tuple(self._values.setdefault(key, []))

    def get_tags(self, key: str) -> tuple[dict[str, Any], ...]:
        """The tag dict of every value under ``key`` (``{}`` where none was given)."""
        tags: list[dict[str, Any]] = [{} for _ in self._values.get(key, ())]
        for index, given in self._tags.get(key, ()):
            tags[index] = dict(given)
        return tuple(tags)

    def as_dict(self) -> Mapping[str, tuple[Any, ...]]:
        """A read-only mapping of key to the tuple of its values."""
        return MappingProxyType({k: tuple(v) for k, v in self._values.items()})

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __repr__(self) -> str:
        return f"FrozenMetrics({dict(self.as_dict())!r})"


@dataclass(frozen=True)
class ArtifactRecord:
    """One logged artifact: its file name, its bytes and the step that wrote it (the
    ArtifactPlugin fills the step in from the step that just ran)."""

    name: str
    data: bytes
    step_name: str = ""


class ArtifactLog:
    """Artifacts (name -> bytes) logged by the current step; names are unique. Iterating
    gives ``ArtifactRecord`` objects, as in Crystallize."""

    def __init__(self) -> None:
        self._items: dict[str, bytes] = {}

    def add(self, name: str, data: bytes) -> None:
        """Log ``data`` under ``name``; a name already logged raises ContextMutationError."""
        if name in self._items:
            raise ContextMutationError(f"Artifact '{name}' already written")
        self._items[name] = bytes(data)

    def clear(self) -> None:
        self._items.clear()

    def items(self) -> list[tuple[str, bytes]]:
        return list(self._items.items())

    def __iter__(self) -> Iterator[ArtifactRecord]:
        return iter([ArtifactRecord(name, data) for name, data in self._items.items()])

    def __len__(self) -> int:
        return len(self._items)


class FrozenContext:
    """A context whose keys can be added but never changed; reads return deep copies.

    Besides the keys, a context carries ``metrics`` (FrozenMetrics), ``artifacts``
    (ArtifactLog), ``logger``, and two generators seeded from the cell seed: ``rng`` (a
    ``numpy.random.Generator``) and ``random`` (a ``random.Random``). Steps that draw from
    them give the same numbers under every executor, threads included.
    """

    def __init__(
        self, initial: Mapping[str, Any] | None = None, logger: logging.Logger | None = None
    ) -> None:
        self._data: dict[str, Any] = copy.deepcopy(dict(initial)) if initial else {}
        self.metrics = FrozenMetrics()
        self.artifacts = ArtifactLog()
        self.logger = logger or _LOGGER

    # per-cell generators, made on first use (see rng / random). Class-level defaults, so a
    # context costs only what it uses.
    _seed: int | None = None
    _rng: np.random.Generator | None = None
    _random: random.Random | None = None
    #: the seed the run's plan gave this cell (None for a context made outside a run)
    cell_seed: int | None = None
    #: the artifact files this cell wrote (``name``, ``step``, ``path``, ``relative``), as
    #: the ArtifactPlugin notes them (None outside a run)
    cell_artifacts: list[dict[str, Any]] | None = None

    @classmethod
    def for_cell(
        cls, initial: Mapping[str, Any], *, replicate: int, condition: str, seed: int
    ) -> FrozenContext:
        """The context one cell starts from: a copy of ``initial`` plus the ``replicate`` and
        ``condition`` keys, generators seeded from ``seed`` and an empty list of the
        artifact files the cell writes."""
        ctx = cls(initial)
        data = ctx._data
        data[REPLICATE_KEY] = replicate
        data[CONDITION_KEY] = condition
        ctx._seed = ctx.cell_seed = seed
        ctx.cell_artifacts = []
        return ctx

    # -- keys ----------------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return copy.deepcopy(self._data[key])

    def get(self, key: str, default: Any = None) -> Any:
        """A deep copy of the value under ``key``, or of ``default``."""
        return copy.deepcopy(self._data.get(key, default))

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self._data:
            raise ContextMutationError(f"Cannot mutate existing key: '{key}'")
        self._data[key] = value

    def add(self, key: str, value: Any) -> None:
        """Insert a new key; an existing key raises ContextMutationError."""
        if key in self._data:
            raise ContextMutationError(f"Cannot mutate existing key: '{key}'")
        self._data[key] = value

    def as_dict(self) -> Mapping[str, Any]:
        """A read-only view over a deep copy of every key."""
        return MappingProxyType(copy.deepcopy(self._data))

    def note_asked(self, key: str) -> None:
        """``key`` was asked for though the context does not hold it (a step parameter
        filled from its default). Only a first-replicate cell's context keeps count."""

    def record(self, name: str, value: Any, tags: Mapping[str, Any] | None = None) -> None:
        """Alias of ``metrics.add``."""
        self.metrics.add(name, value, tags)

    # -- per-cell generators ------------------------------------------------------------
    def _set_seed(self, seed: int | None) -> None:
        self._seed = seed
        self._rng = None
        self._random = None

    @property
    def rng(self) -> np.random.Generator:
        """A numpy Generator seeded from this cell's seed (created on first use)."""
        if self._rng is None:
            self._rng = np.random.default_rng(self._seed)
        return self._rng

    @property
    def random(self) -> random.Random:
        """A ``random.Random`` seeded from this cell's seed (created on first use)."""
        if self._random is None:
            self._random = random.Random(self._seed)
        return self._random

    def __repr__(self) -> str:
        return f"FrozenContext(keys={sorted(self._data)!r})"


class LoggingContext(FrozenContext):
    """A FrozenContext that wraps another one, recording (and logging at DEBUG) every key
    read. It holds no keys of its own: reads, writes, metrics, artifacts and the per-cell
    generators are the wrapped context's."""

    def __init__(self, ctx: FrozenContext, logger: logging.Logger | None = None) -> None:
        # no FrozenContext.__init__: nothing is copied, everything is the wrapped context's
        self._ctx = ctx
        self.metrics = ctx.metrics
        self.artifacts = ctx.artifacts
        self.logger = logger or ctx.logger
        self.reads: dict[str, Any] = {}

    def _read(self, key: str, value: Any) -> Any:
        self.reads[key] = value
        self.logger.debug("Read %s: %r", key, value)
        return value

    def __getitem__(self, key: str) -> Any:
        return self._read(key, self._ctx[key])

    def get(self, key: str, default: Any = None) -> Any:
        """The wrapped context's value (a read, recorded) or ``default`` (not recorded)."""
        value = self._ctx.get(key, default)  # asked of the wrapped context either way
        return self._read(key, value) if key in self._ctx._data else value

    def __setitem__(self, key: str, value: Any) -> None:
        self._ctx[key] = value

    def add(self, key: str, value: Any) -> None:
        self._ctx.add(key, value)

    def note_asked(self, key: str) -> None:
        self._ctx.note_asked(key)

    @property
    def _data(self) -> dict[str, Any]:  # type: ignore[override]
        return self._ctx._data

    @property
    def rng(self) -> np.random.Generator:
        return self._ctx.rng

    @property
    def random(self) -> random.Random:
        return self._ctx.random

    @property
    def cell_seed(self) -> int | None:  # type: ignore[override]
        return self._ctx.cell_seed

    @property
    def cell_artifacts(self) -> list[dict[str, Any]] | None:  # type: ignore[override]
        return self._ctx.cell_artifacts

    def _set_seed(self, seed: int | None) -> None:
        self._ctx._set_seed(seed)

    def __repr__(self) -> str:
        return f"LoggingContext({self._ctx!r})"


def standalone_context(
    initial: Mapping[str, Any] | None = None, *, logger: logging.Logger | None = None
) -> FrozenContext:
    """A plain FrozenContext for using steps outside an experiment."""
    return FrozenContext(initial or {}, logger=logger)
