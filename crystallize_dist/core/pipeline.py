"""Pipeline: runs steps in order, unpacks metrics, calls step hooks and records provenance."""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import pickle
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystallize_dist.constants import STEP_NAME_KEY
from crystallize_dist.core.context import FrozenContext, LoggingContext
from crystallize_dist.core.loops import await_here
from crystallize_dist.core.plugins import StepHooks
from crystallize_dist.core.step import PipelineStep
from crystallize_dist.errors import PipelineExecutionError, ValidationError

if TYPE_CHECKING:
    from crystallize_dist.core.experiment import Experiment

CACHE_DIR = Path(os.environ.get("CRYSTALLIZE_CACHE_DIR", ".cache"))
_log = logging.getLogger("crystallize")
_MISS = object()
_NO_HOOKS = StepHooks((), (), ())
_EMPTY: dict[str, int] = {}
#: what steps usually return: never awaitable, so no ABC check is needed
_NEVER_AWAITABLE = frozenset({type(None), bool, int, float, str, bytes, dict, list, tuple})

#: A step as a run sees it, looked up once per run instead of once per cell:
#: ``(step, class name, params, step_hash, cacheable)``.
PlannedStep = tuple[PipelineStep, str, Any, str, bool]


def data_hash(data: Any) -> str | None:
    """sha256 of the pickled data, or None when the data cannot be pickled."""
    try:
        return hashlib.sha256(pickle.dumps(data)).hexdigest()
    except Exception:
        return None


def _cache_load(step_hash: str, input_hash: str | None) -> Any:
    if input_hash is None:
        return _MISS
    path = CACHE_DIR / step_hash / f"{input_hash}.pkl"
    try:
        with path.open("rb") as fh:
            return pickle.load(fh)
    except (OSError, EOFError, pickle.UnpicklingError):
        return _MISS


def _cache_store(step_hash: str, input_hash: str | None, value: Any) -> None:
    if input_hash is None:
        return
    folder = CACHE_DIR / step_hash
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{input_hash}.pkl"
    if target.exists():
        return
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        pickle.dump(value, fh)
    os.replace(tmp, target)  # atomic: first complete write wins, readers never see halves


class Pipeline:
    """An ordered list of steps."""

    def __init__(self, steps: Iterable[PipelineStep]) -> None:
        self.steps: list[PipelineStep] = list(steps)
        if not self.steps:
            raise ValidationError("Pipeline must contain at least one step.")
        self._provenance: list[dict[str, Any]] = []

    def signature(self) -> str:
        """``ClassName + repr(params)`` of every step, joined with ``|``."""
        return "|".join(type(s).__name__ + repr(s.params) for s in self.steps)

    def get_provenance(self) -> list[dict[str, Any]]:
        return list(self._provenance)

    def plan(self) -> list[PlannedStep]:
        """What running the steps needs from each of them, looked up once: the step, its
        class name, params and step hash."""
        return [(s, type(s).__name__, s.params, s.step_hash, bool(s.cacheable)) for s in self.steps]

    # -- running the steps: a sync and an async twin around shared bookkeeping ----------------
    def _prepare(
        self,
        experiment: Experiment | None,
        planned: list[PlannedStep] | None,
        records: list[dict[str, Any]] | None,
        hooks: StepHooks | None,
    ) -> tuple[list[PlannedStep], list[dict[str, Any]], StepHooks]:
        """What a call works out when its caller did not (a run works it out once)."""
        if hooks is None:
            hooks = StepHooks.of(experiment.plugins) if experiment is not None else _NO_HOOKS
        return (
            (self.plan() if planned is None else planned),
            ([] if records is None else records),
            hooks,
        )

    def _run_steps(
        self,
        data: Any,
        ctx: FrozenContext,
        verbose: bool,
        experiment: Experiment | None,
        planned: list[PlannedStep] | None = None,
        records: list[dict[str, Any]] | None = None,
        hooks: StepHooks | None = None,
    ) -> Any:
        """Run the steps (an async step runs on this thread's private loop); provenance goes
        to ``records`` (a private list per cell, so concurrent cells never share it) and to
        ``get_provenance()``. ``planned`` (see ``plan``) and ``hooks`` (the experiment's
        plugins with step hooks) are worked out here when not given; a run works them out
        once for all its cells. ``_arun_steps`` is its async twin: keep them in step."""
        if planned is None or records is None or hooks is None:
            planned, records, hooks = self._prepare(experiment, planned, records, hooks)
        before_step = hooks.before_step
        keys = ctx._data  # the context's own dict: steps only ever add keys to it
        values = ctx.metrics._values
        hits = 0
        caching = False
        last = len(planned) - 1
        input_hash = data_hash(data)
        for i, (step, name, params, step_hash, caches) in enumerate(planned):
            if STEP_NAME_KEY in keys:
                del keys[STEP_NAME_KEY]  # step_name is reset, and moves to the end
            keys[STEP_NAME_KEY] = name
            keys_before = len(keys)
            counts_before = {k: len(v) for k, v in values.items()} if values else _EMPTY
            for plugin in before_step:
                plugin.before_step(experiment, step)  # type: ignore[arg-type]
            view: Any = LoggingContext(ctx) if verbose else ctx
            try:
                if caches:
                    caching = True
                    result = _cache_load(step_hash, input_hash)
                    cache_hit = result is not _MISS
                else:
                    cache_hit = False
                if not cache_hit:
                    result = step(data, view)
                    if type(result) not in _NEVER_AWAITABLE and inspect.isawaitable(result):
                        result = await_here(result)
                    if caches:
                        _cache_store(step_hash, input_hash, result)
            except Exception as exc:
                raise PipelineExecutionError(name, exc) from exc
            hits += cache_hit
            data, input_hash = _finish_step(
                ctx,
                result,
                experiment,
                step,
                hooks,
                cache_hit,
                i == last,
                keys_before,
                counts_before,
                view if verbose else None,
                name,
                params,
                step_hash,
                input_hash,
                records,
            )
        return self._finish(data, records, hits if caching else None)

    async def _arun_steps(
        self,
        data: Any,
        ctx: FrozenContext,
        verbose: bool,
        experiment: Experiment | None,
        planned: list[PlannedStep] | None = None,
        records: list[dict[str, Any]] | None = None,
        hooks: StepHooks | None = None,
    ) -> Any:
        """Async twin of ``_run_steps``: awaits async steps on the running loop."""
        if planned is None or records is None or hooks is None:
            planned, records, hooks = self._prepare(experiment, planned, records, hooks)
        before_step = hooks.before_step
        keys = ctx._data
        values = ctx.metrics._values
        hits = 0
        caching = False
        last = len(planned) - 1
        input_hash = data_hash(data)
        for i, (step, name, params, step_hash, caches) in enumerate(planned):
            if STEP_NAME_KEY in keys:
                del keys[STEP_NAME_KEY]
            keys[STEP_NAME_KEY] = name
            keys_before = len(keys)
            counts_before = {k: len(v) for k, v in values.items()} if values else _EMPTY
            for plugin in before_step:
                plugin.before_step(experiment, step)  # type: ignore[arg-type]
            view: Any = LoggingContext(ctx) if verbose else ctx
            try:
                if caches:
                    caching = True
                    result = _cache_load(step_hash, input_hash)
                    cache_hit = result is not _MISS
                else:
                    cache_hit = False
                if not cache_hit:
                    result = step(data, view)
                    if inspect.isawaitable(result):
                        result = await result
                    if caches:
                        _cache_store(step_hash, input_hash, result)
            except Exception as exc:
                raise PipelineExecutionError(name, exc) from exc
            hits += cache_hit
            data, input_hash = _finish_step(
                ctx,
                result,
                experiment,
                step,
                hooks,
                cache_hit,
                i == last,
                keys_before,
                counts_before,
                view if verbose else None,
                name,
                params,
                step_hash,
                input_hash,
                records,
            )
        return self._finish(data, records, hits if caching else None)

    def _finish(self, data: Any, records: list[dict[str, Any]], hits: int | None) -> Any:
        """After the last step: the cache hit rate (``hits`` is None when no step caches)
        and the provenance ``get_provenance()`` returns."""
        if hits is not None:
            _log.info("Cache hit rate: %d/%d", hits, len(records))
        self._provenance = records
        return data

    # -- drivers -----------------------------------------------------------------------------
    def run(
        self,
        data: Any,
        ctx: FrozenContext,
        *,
        verbose: bool = False,
        progress: bool = False,
        rep: int | None = None,
        condition: str | None = None,
        logger: logging.Logger | None = None,
        return_provenance: bool = False,
        experiment: Experiment | None = None,
    ) -> Any:
        """Run every step on ``data``; returns the final data (and provenance if asked)."""
        out = self._run_steps(data, ctx, verbose, experiment)
        return (out, self.get_provenance()) if return_provenance else out

    async def arun(
        self,
        data: Any,
        ctx: FrozenContext,
        *,
        verbose: bool = False,
        progress: bool = False,
        rep: int | None = None,
        condition: str | None = None,
        logger: logging.Logger | None = None,
        return_provenance: bool = False,
        experiment: Experiment | None = None,
    ) -> Any:
        """Async twin of :meth:`run`: awaits async steps on the running loop."""
        out = await self._arun_steps(data, ctx, verbose, experiment)
        return (out, self.get_provenance()) if return_provenance else out


def _finish_step(
    ctx: FrozenContext,
    result: Any,
    experiment: Experiment | None,
    step: PipelineStep,
    hooks: StepHooks,
    cache_hit: bool,
    is_last: bool,
    keys_before: int,
    counts_before: dict[str, int],
    view: LoggingContext | None,
    name: str,
    params: Any,
    step_hash: str,
    input_hash: str | None,
    records: list[dict[str, Any]],
) -> tuple[Any, str | None]:
    """A step's result taken in: metrics of a ``(data, {metric: value})`` result added, the
    ``after_step`` hooks called, a cached last step's metrics replayed and the step's
    provenance record appended. Returns the next step's data and its hash."""
    metrics: Mapping[str, Any] | None = None
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], Mapping):
        data, metrics = result
        for key, value in metrics.items():
            ctx.metrics.add(key, value)
    else:
        data = result
    for plugin in hooks.after_step:
        plugin.after_step(experiment, step, data, ctx)  # type: ignore[arg-type]
    if cache_hit and is_last and metrics is None and isinstance(data, Mapping):
        for key, value in data.items():
            ctx.metrics.add(key, value)
    keys = ctx._data
    # keys are only ever added, so the new ones are the last len(keys) - keys_before
    wrote = (
        {k: {"before": None, "after": keys[k]} for k in list(keys)[keys_before:]}
        if len(keys) != keys_before
        else {}
    )
    changed = {}
    for key, vals in ctx.metrics._values.items():
        n = counts_before.get(key, 0)
        if len(vals) != n:
            changed[key] = {"before": tuple(vals[:n]), "after": tuple(vals)}
    output_hash = data_hash(data)
    records.append(
        {
            "step": name,
            "params": params.copy() if type(params) is dict else params,
            "step_hash": step_hash,
            "input_hash": input_hash,
            "output_hash": output_hash,
            "cache_hit": cache_hit,
            "ctx_changes": {
                "reads": dict(view.reads) if view is not None else {},
                "wrote": wrote,
                "metrics": changed,
            },
        }
    )
    return data, output_hash  # the next step's input is this step's output
