"""Canonical JSON and the result digest.

*Canonical JSON* (defined here, once) is ``json.dumps`` with keys sorted, no whitespace
(``","`` and ``":"`` separators), UTF-8 text kept as is, after converting values:

- numpy scalars become Python ``int`` / ``float`` / ``bool``; numpy arrays and tuples become
  lists; mapping keys become strings;
- floats are written with Python's ``repr``: the shortest text that reads back to exactly the
  same double (``0.1`` stays ``0.1``, ``1e-300`` stays ``1e-300``); ``1`` and ``1.0`` differ;
  NaN and infinities are written ``NaN``, ``Infinity``, ``-Infinity``.

The *digest* of a result is the sha256 (hex) of the canonical JSON of
``{"baseline": {metric: [values]}, "treatments": {name: {metric: [values]}}}``.

``paused_gc`` is for the bulk work around it: decoding, folding or encoding many records.
"""

from __future__ import annotations

import base64
import dataclasses
import gc
import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import PurePath
from typing import Any

import numpy as np


class NotJSONable(TypeError):
    """Raised by ``to_jsonable(strict=True)`` for a value with no JSON form."""

    def __init__(self, value: Any, path: str) -> None:
        super().__init__(
            f"{path} is a {type(value).__module__}.{type(value).__qualname__}, "
            "which has no JSON form"
        )
        self.value_type = type(value).__qualname__
        self.path = path


_ATOMS = (str, int, float, bool, type(None))
_ATOM_TYPES = frozenset(_ATOMS)


def to_jsonable(value: Any, *, strict: bool = True, path: str = "value") -> Any:
    """``value`` as plain JSON types (see module docstring).

    ``strict`` raises NotJSONable for anything else; lenient mode turns dataclasses and
    namedtuples into dicts, bytes into base64 text and other objects into ``str(value)``.
    """
    try:
        return _fast(value, strict)
    except NotJSONable:  # rare: convert again, tracking the path, for the error message
        return _traced(value, strict, path)


def _fast(value: Any, strict: bool) -> Any:
    """The converter for the hot path (cell records): plain dicts, lists and tuples are walked
    without ABC checks or path strings; anything else goes to ``_traced``."""
    kind = type(value)
    if kind in _ATOM_TYPES:
        return value
    if kind is dict:
        return {(k if type(k) is str else str(k)): _fast(v, strict) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_fast(v, strict) for v in value]
    return _traced(value, strict, "value")


def _traced(value: Any, strict: bool, path: str) -> Any:
    """The general converter; ``path`` names the value in NotJSONable messages."""
    if type(value) in _ATOM_TYPES:  # fast path for the common case
        return value
    if isinstance(value, np.generic):  # before the atoms: np.float64 subclasses float
        if isinstance(value, (np.bool_, np.integer, np.floating)):
            return value.item()
        # complex, datetime64, void, ...: what .item() gives must be JSON in its turn
        plain = value.tolist() if isinstance(value, np.void) else value.item()
        if type(plain) is type(value):  # no plainer form
            if strict:
                raise NotJSONable(value, path)
            return str(value)
        return _traced(plain, strict, path)
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            return value.tolist()
        return _traced(value.tolist(), strict, path)
    if isinstance(value, _ATOMS):  # subclasses (IntEnum, str subclasses) serialise as is
        return value
    if isinstance(value, Mapping):
        return {str(k): _traced(v, strict, f"{path}[{k!r}]") for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_asdict") and not strict:
        return _traced(value._asdict(), strict, path)
    if isinstance(value, (list, tuple)):
        return [_traced(v, strict, f"{path}[{i}]") for i, v in enumerate(value)]
    if strict:
        raise NotJSONable(value, path)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _traced(dataclasses.asdict(value), False, path)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, (set, frozenset)):
        return sorted((_traced(v, False, path) for v in value), key=repr)
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "item") and callable(value.item):
        try:
            return _traced(value.item(), False, path)
        except Exception:
            pass
    return str(value)


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value`` (converted leniently first)."""
    return json.dumps(
        to_jsonable(value, strict=False),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=True,
    )


def _lenient(value: Any) -> Any:
    return to_jsonable(value, strict=False)


def json_text(value: Any, **options: Any) -> str:
    """``json.dumps(value, **options)``, converting values that are not JSON types
    leniently on the way (e.g. objects a step wrote to the context, kept raw in step
    provenance); mapping keys json cannot write (tuples, ...) become strings too."""
    try:
        return json.dumps(value, default=_lenient, **options)
    except TypeError:  # a key json refuses: convert the whole value first
        return json.dumps(to_jsonable(value, strict=False), **options)


#: the encoder of ``dumps``, made once (making one costs about as much as encoding a record)
_COMPACT = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=True, default=_lenient
)


def dumps(value: Any) -> str:
    """Compact JSON of a record or manifest (not sorted); see ``json_text``."""
    try:
        return _COMPACT.encode(value)
    except TypeError:  # a key json refuses: convert the whole value first
        return json_text(value, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def metrics_digest(baseline: Mapping[str, Any], treatments: Mapping[str, Mapping[str, Any]]) -> str:
    """sha256 of the canonical JSON of the metrics (see module docstring)."""
    text = canonical_json({"baseline": baseline, "treatments": treatments})
    return hashlib.sha256(text.encode()).hexdigest()


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while many long-lived objects are made: with it on,
    each collection re-walks every record already kept, and loading 100,000 records takes
    several times longer. (Records hold no cycles; reference counting frees them.)"""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
