"""Injection: step parameters filled from the context, and resources made once per thread.

``inject_from_ctx`` fills a function's parameters that the caller did not pass from the
context key of the same name, then from the parameter's default; a value that is callable
is called (with ``ctx`` when it takes it), which is how a ``resource_factory`` in
``initial_ctx`` becomes its resource; an Artifact is bound to the context.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

from crystallize_dist.model.artifact import Artifact
from crystallize_dist.model.context import FrozenContext

_resources = threading.local()


class ResourceFactoryWrapper:
    """A picklable factory whose result is created once per thread and then reused."""

    def __init__(self, fn: Callable[[FrozenContext], Any], key: str | None = None) -> None:
        self.fn = fn
        self.key = key

    def _cache_key(self) -> Any:
        return self.key if self.key is not None else hash(self.fn.__code__)

    def __call__(self, ctx: FrozenContext) -> Any:
        cache = getattr(_resources, "cache", None)
        if cache is None:
            cache = _resources.cache = {}
        key = self._cache_key()
        if key not in cache:
            cache[key] = self.fn(ctx)
        return cache[key]

    def __deepcopy__(self, memo: dict[int, Any]) -> ResourceFactoryWrapper:
        return self  # immutable and shared: a context copy keeps the same factory

    def __repr__(self) -> str:
        return f"resource_factory({getattr(self.fn, '__qualname__', self.fn)!r})"


def resource_factory(
    fn: Callable[[FrozenContext], Any], *, key: str | None = None
) -> ResourceFactoryWrapper:
    """Wrap ``fn(ctx)`` so a step parameter of the same name gets one cached resource."""
    return ResourceFactoryWrapper(fn, key)


def _wants_ctx(fn: Callable[..., Any]) -> bool:
    if isinstance(fn, ResourceFactoryWrapper):
        return True
    try:
        return "ctx" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _resolve(value: Any, ctx: FrozenContext) -> Any:
    if isinstance(value, Artifact):
        return value._clone_with_context(ctx)
    if callable(value) and not isinstance(value, type):
        return value(ctx) if _wants_ctx(value) else value()
    return value


def inject_from_ctx(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Fill parameters not passed explicitly from the context, then from defaults.

    Callable values are called (with ``ctx`` when they take it); Artifacts are bound to ctx.
    """
    sig = inspect.signature(fn)
    takes_ctx = "ctx" in sig.parameters
    free = [
        (name, p.default)
        for name, p in sig.parameters.items()
        if name not in ("data", "ctx") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]

    @functools.wraps(fn)
    def wrapper(data: Any, ctx: FrozenContext, **explicit: Any) -> Any:
        if not isinstance(ctx, FrozenContext):
            raise TypeError(f"'ctx' must be a FrozenContext, got {type(ctx).__name__}")
        raw = ctx._data
        kwargs: dict[str, Any] = {}
        for name, default in free:
            if name in explicit:
                value = explicit[name]
                kwargs[name] = (
                    value._clone_with_context(ctx) if isinstance(value, Artifact) else value
                )
                continue
            if name in raw:
                value = ctx.get(name)
            elif default is inspect.Parameter.empty:
                raise TypeError(f"Missing parameters: {name}")
            else:
                ctx.note_asked(name)
                value = default
            kwargs[name] = _resolve(value, ctx)
        if takes_ctx:
            return fn(data, ctx, **kwargs)
        return fn(data, **kwargs)

    return wrapper
