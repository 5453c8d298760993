"""PortableCallable: a callable that pickles even when it is a lambda or a nested function.

An Artifact's ``loader`` and ``writer`` are often lambdas (``Artifact("x", loader=lambda p:
p.read_text())``), which ``pickle`` refuses: it stores functions by their importable name.
A PortableCallable pickles its function by name when it can and otherwise by value: the
function's code (``marshal``), name, defaults and closure, with the module it was defined
in named so that its globals are that module's again where it is unpickled. Code pickled by
value reads back only on the same Python version, which is what a process pool (the place
an experiment is pickled) runs; workers of a distributed run load experiments by reference
and never unpickle one.
"""

from __future__ import annotations

import importlib
import marshal
import pickle
import sys
import types
from collections.abc import Callable
from typing import Any


def _module_globals(module: str | None, names: tuple[str, ...], fallback: dict[str, Any]) -> Any:
    """The globals a rebuilt function runs with: its module's when that imports here,
    else the values it used that could be pickled."""
    if module:
        found = sys.modules.get(module)
        if found is None:
            try:
                found = importlib.import_module(module)
            except Exception:
                found = None
        if found is not None:
            return vars(found)
    return {"__builtins__": __builtins__, **{k: v for k, v in fallback.items() if k in names}}


def _rebuild(
    code: bytes,
    name: str,
    module: str | None,
    defaults: tuple[Any, ...] | None,
    kwdefaults: dict[str, Any] | None,
    cells: tuple[Any, ...] | None,
    fallback: dict[str, Any],
) -> PortableCallable:
    body = marshal.loads(code)
    closure = tuple(types.CellType(v) for v in cells) if cells is not None else None
    fn = types.FunctionType(
        body, _module_globals(module, body.co_names, fallback), name, defaults, closure
    )
    fn.__kwdefaults__ = kwdefaults
    fn.__module__ = module  # type: ignore[assignment]
    return PortableCallable(fn)


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


class PortableCallable:
    """Wraps ``fn``; calling it calls ``fn``; pickling it works for lambdas too."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn: Callable[..., Any] = fn.fn if isinstance(fn, PortableCallable) else fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        fn = self.fn
        if _picklable(fn) or not isinstance(fn, types.FunctionType):
            return (PortableCallable, (fn,))
        cells = None
        if fn.__closure__ is not None:
            cells = tuple(_portable(c.cell_contents) for c in fn.__closure__)
        used = {
            k: _portable(v)
            for k, v in fn.__globals__.items()
            if k in fn.__code__.co_names and _picklable(_portable(v))
        }
        defaults = tuple(_portable(d) for d in fn.__defaults__) if fn.__defaults__ else None
        return (
            _rebuild,
            (
                marshal.dumps(fn.__code__),
                fn.__name__,
                fn.__module__,
                defaults,
                fn.__kwdefaults__,
                cells,
                used,
            ),
        )

    def __repr__(self) -> str:
        return f"PortableCallable({getattr(self.fn, '__qualname__', self.fn)!r})"


def _portable(value: Any) -> Any:
    """A function that pickle refuses, wrapped so that it pickles; anything else as it is."""
    if isinstance(value, types.FunctionType) and not _picklable(value):
        return PortableCallable(value)
    return value
