"""PipelineStep: the unit of work inside a pipeline."""

from __future__ import annotations

import hashlib
import inspect
import pickle
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crystallize_dist.model.context import FrozenContext


_SOURCE_HASHES: dict[Any, str] = {}


def source_hash(obj: Any) -> str:
    """sha256 of an object's source text, falling back to its bytecode; cached per code
    object (reading source is slow, and a changed function is a new code object)."""
    key = getattr(obj, "__code__", None) or obj
    try:
        return _SOURCE_HASHES[key]
    except (KeyError, TypeError):
        pass
    try:
        text = inspect.getsource(obj).encode()
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        text = code.co_code if code is not None else repr(obj).encode()
    digest = hashlib.sha256(text).hexdigest()
    try:
        _SOURCE_HASHES[key] = digest
    except TypeError:  # unhashable: not cached
        pass
    return digest


class PipelineStep(ABC):
    """One step: ``__call__(data, ctx)`` returns the next data, or ``(data, {metric: v})``.

    ``params`` (used for hashing, the signature and provenance) defaults to ``{}``;
    ``setup`` / ``teardown`` run once per run with the experiment's setup context.
    """

    cacheable: bool = False

    @abstractmethod
    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        """Transform ``data``; may be ``async def``."""

    @property
    def params(self) -> dict[str, Any]:
        return {}

    def setup(self, ctx: FrozenContext) -> None:
        """Called once per run before any cell."""

    def teardown(self, ctx: FrozenContext) -> None:
        """Called once per run after every cell, also on failure."""

    def _code_object(self) -> Any:
        """The function whose source identifies this step's behaviour."""
        return type(self).__call__

    @property
    def step_hash(self) -> str:
        """sha256 of the step's class name, params and the source of its code."""
        payload = {
            "class": type(self).__name__,
            "params": self.params,
            "code": source_hash(self._code_object()),
        }
        try:
            raw = pickle.dumps(payload)
        except Exception:
            raw = repr(payload).encode()
        return hashlib.sha256(raw).hexdigest()
