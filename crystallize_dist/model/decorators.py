"""Decorators and factories: pipeline_step, data_source, treatment, verifier, hypothesis and
pipeline (resource_factory and inject_from_ctx: injection.py)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from crystallize_dist.model.datasource import DataSource
from crystallize_dist.model.hypothesis import Hypothesis
from crystallize_dist.model.injection import inject_from_ctx
from crystallize_dist.model.pipeline import Pipeline
from crystallize_dist.model.registry import register_datasource
from crystallize_dist.model.step import PipelineStep
from crystallize_dist.model.treatment import Treatment

if TYPE_CHECKING:
    from crystallize_dist.model.context import FrozenContext


def _required(sig: inspect.Signature, names: Iterable[str]) -> list[str]:
    """The parameters among ``names`` that have no default (``*args`` / ``**kw`` aside)."""
    return [
        n
        for n in names
        if sig.parameters[n].default is inspect.Parameter.empty
        and sig.parameters[n].kind
        not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def _check_params(
    given: Collection[str], names: Collection[str] | None, required: Iterable[str]
) -> None:
    """TypeError for parameters ``given`` that are not among ``names`` (None: any name is
    accepted) and for ``required`` ones that are not given."""
    if names is not None:
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise TypeError(f"Unknown parameters: {', '.join(unknown)}")
    missing = [n for n in required if n not in given]
    if missing:
        raise TypeError(f"Missing parameters: {', '.join(missing)}")


# --- pipeline_step -------------------------------------------------------------------------
class _FunctionStep(PipelineStep):
    """Base of the classes ``@pipeline_step()`` makes: calls the wrapped function."""

    _fn: Callable[..., Any]
    _injected: Callable[..., Any]
    _factory: Callable[..., Any]

    def __init__(self, params: Mapping[str, Any]) -> None:
        self._params = dict(params)

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        return self._injected(data, ctx, **self._params)

    async def __acall__(self, data: Any, ctx: FrozenContext) -> Any:
        """The step's result, awaited when the function is ``async def``."""
        result = self(data, ctx)
        return await result if inspect.isawaitable(result) else result

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    def _code_object(self) -> Any:
        return self._fn

    def __reduce__(self) -> tuple[Any, ...]:
        # via the factory (the made class is not importable); the params travel as state,
        # set once the step exists, so a param that leads back to the step (an output
        # Artifact whose producer's pipeline holds this step) unpickles whole
        return (_bare, (type(self)._factory,), {"_params": self._params})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._params!r})"


def _rebuild_step(factory: Callable[..., Any], params: Mapping[str, Any]) -> Any:
    return factory(**params)


def _bare(factory: Callable[..., Any]) -> Any:
    """An instance of the class ``factory`` makes, before pickle sets its state."""
    cls = factory.step_class  # type: ignore[attr-defined]
    return cls.__new__(cls)


def pipeline_step(
    cacheable: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., PipelineStep]]:
    """``@pipeline_step()``: turn ``fn(data, ctx, **params)`` into a step factory.

    The factory takes overrides for the function's parameters; only those explicit
    overrides are the step's ``params``. Other parameters come from the context key of the
    same name, then from the function default.
    """
    if callable(cacheable) and not isinstance(cacheable, bool):
        raise TypeError("pipeline_step must be called with parentheses: @pipeline_step()")

    def decorate(fn: Callable[..., Any]) -> Callable[..., PipelineStep]:
        sig = inspect.signature(fn)
        names = [n for n in sig.parameters if n not in ("data", "ctx")]
        required = _required(sig, names)
        cls_name = fn.__name__.title() + "Step"
        cls = type(
            cls_name,
            (_FunctionStep,),
            {
                "cacheable": cacheable,
                "_fn": staticmethod(fn),
                "_injected": staticmethod(inject_from_ctx(fn)),
                "__module__": fn.__module__,
                "__qualname__": cls_name,
            },
        )

        @functools.wraps(fn)
        def factory(**overrides: Any) -> PipelineStep:
            _check_params(overrides, names, required)
            step: PipelineStep = cls(overrides)
            return step

        cls._factory = factory  # type: ignore[attr-defined]
        factory.step_class = cls  # type: ignore[attr-defined]
        return factory

    return decorate


# --- data_source ---------------------------------------------------------------------------
class _FunctionSource(DataSource):
    _fn: Callable[..., Any]
    _factory: Callable[..., Any]

    def __init__(self, params: Mapping[str, Any], overrides: Mapping[str, Any]) -> None:
        self._params = dict(params)
        self._overrides = dict(overrides)

    def fetch(self, ctx: FrozenContext) -> Any:
        return self._fn(ctx, **self._params)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _bare,
            (type(self)._factory,),
            {"_params": self._params, "_overrides": self._overrides},
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._params!r})"


def data_source(fn_or_name: Any = None, *, register: bool = False) -> Any:
    """``@data_source`` / ``@data_source()`` / ``@data_source("name", register=True)``.

    Returns a factory ``(**overrides) -> DataSource`` whose ``fetch(ctx)`` calls
    ``fn(ctx, **params)``; params are the defaults merged with the overrides.
    """

    def decorate(fn: Callable[..., Any], name: str | None) -> Callable[..., DataSource]:
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())[1:]
        names = {p.name for p in params}
        defaults = {p.name: p.default for p in params if p.default is not p.empty}
        required = _required(sig, [p.name for p in params])
        cls_name = fn.__name__.title() + "Source"
        cls = type(
            cls_name,
            (_FunctionSource,),
            {
                "_fn": staticmethod(fn),
                "__module__": fn.__module__,
                "__qualname__": cls_name,
            },
        )

        @functools.wraps(fn)
        def factory(**overrides: Any) -> DataSource:
            known = {k: v for k, v in overrides.items() if k in names}
            _check_params(known, None, required)  # unknown overrides are ignored, as upstream
            source: DataSource = cls({**defaults, **known}, overrides)
            return source

        cls._factory = factory  # type: ignore[attr-defined]
        factory.step_class = cls  # type: ignore[attr-defined]
        if register and not required:
            register_datasource(name or fn.__name__, factory())
        return factory

    if callable(fn_or_name):
        return decorate(fn_or_name, None)
    return lambda fn: decorate(fn, fn_or_name)


# --- treatment / verifier / hypothesis / pipeline -----------------------------------------
def treatment(
    name: str, apply: Callable[[FrozenContext], Any] | Mapping[str, Any] | None = None
) -> Any:
    """``treatment(name, apply)`` returns a Treatment; ``@treatment(name)`` makes a factory."""
    if apply is not None:
        return Treatment(name, apply)

    def decorate(fn: Callable[[FrozenContext], Any]) -> Callable[[], Treatment]:
        @functools.wraps(fn)
        def factory() -> Treatment:
            return Treatment(name, fn)

        return factory

    return decorate


_DATA_PARAMS = ("baseline_samples", "treatment_samples", "baseline", "treatment")


class VerifierCallable:
    """A verifier with its parameters bound: ``v(baseline, treatment)`` (picklable)."""

    def __init__(
        self, factory: Callable[..., Any], fn: Callable[..., Any], params: Mapping[str, Any]
    ) -> None:
        self.factory = factory
        self.fn = fn
        self.params = dict(params)

    def __call__(self, baseline: Mapping[str, Any], treatment: Mapping[str, Any]) -> Any:
        return self.fn(baseline, treatment, **self.params)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_step, (self.factory, self.params))

    def __repr__(self) -> str:
        return f"{getattr(self.fn, '__name__', 'verifier')}({self.params!r})"


def verifier(fn: Callable[..., Any]) -> Callable[..., VerifierCallable]:
    """``@verifier``: a factory ``(**params) -> VerifierCallable``."""
    sig = inspect.signature(fn)
    names = [n for n in sig.parameters if n not in _DATA_PARAMS]
    required = _required(sig, names)

    @functools.wraps(fn)
    def factory(**params: Any) -> VerifierCallable:
        _check_params(params, names, required)
        return VerifierCallable(factory, fn, params)

    return factory


def hypothesis(
    *, verifier: Callable[..., Any], metrics: Any = None, name: str | None = None
) -> Callable[[Callable[[Any], float]], Hypothesis]:
    """``@hypothesis(verifier=..., metrics=...)`` on a ranker returns a Hypothesis."""

    def decorate(ranker: Callable[[Any], float]) -> Hypothesis:
        return Hypothesis(
            verifier=verifier, metrics=metrics, ranker=ranker, name=name or ranker.__name__
        )

    return decorate


def pipeline(*steps: PipelineStep) -> Pipeline:
    """``pipeline(a, b, c)`` is ``Pipeline([a, b, c])``."""
    return Pipeline(list(steps))
