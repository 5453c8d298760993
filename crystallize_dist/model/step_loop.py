"""Running a pipeline's steps over one cell's data: ``run_steps`` and its async twin.

For each step: reset ``step_name``, call the ``before_step`` hooks, take the output from the
step cache or call the step (a step's exception becomes a PipelineExecutionError), unpack a
``(data, {metric: value})`` result into the context's metrics, call the ``after_step``
hooks, and append the step's provenance record. ``_Pass`` holds what the two twins share;
they differ only in how an awaitable step result is awaited.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from crystallize_dist.constants import STEP_NAME_KEY
from crystallize_dist.errors import PipelineExecutionError
from crystallize_dist.model import step_cache
from crystallize_dist.model.awaiting import await_here
from crystallize_dist.model.context import LoggingContext
from crystallize_dist.model.plugins import NO_HOOKS, StepHooks

if TYPE_CHECKING:
    from crystallize_dist.model.context import FrozenContext
    from crystallize_dist.model.plugins import ExperimentLike
    from crystallize_dist.model.step import PipelineStep

_log = logging.getLogger("crystallize")
_EMPTY: dict[str, int] = {}
#: what steps usually return: never awaitable, so no ABC check is needed
_NEVER_AWAITABLE = frozenset({type(None), bool, int, float, str, bytes, dict, list, tuple})
MISS = step_cache.MISS

#: A step as a run sees it, looked up once per run instead of once per cell:
#: ``(step, class name, params, step_hash, cacheable)`` (see ``Pipeline.plan``).
PlannedStep = tuple["PipelineStep", str, Any, str, bool]


class _Pass:
    """One pass of the steps over one cell's data: the bookkeeping both twins share."""

    __slots__ = (
        "cache_hit",
        "caching",
        "counts_before",
        "ctx",
        "data",
        "experiment",
        "hits",
        "hooks",
        "index",
        "input_hash",
        "keys",
        "keys_before",
        "last",
        "records",
        "values",
        "verbose",
        "view",
    )  # fmt: skip

    def __init__(
        self,
        data: Any,
        ctx: FrozenContext,
        verbose: bool,
        experiment: ExperimentLike | None,
        planned: list[PlannedStep],
        records: list[dict[str, Any]] | None,
        hooks: StepHooks | None,
    ) -> None:
        if hooks is None:
            hooks = StepHooks.of(experiment.plugins) if experiment is not None else NO_HOOKS
        self.data = data
        self.ctx = ctx
        self.experiment = experiment
        self.hooks = hooks
        self.verbose = verbose
        self.view: LoggingContext | None = None
        self.records = [] if records is None else records
        self.keys = ctx._data  # the context's own dict: steps only ever add keys to it
        self.values = ctx.metrics.lists
        self.input_hash = step_cache.data_hash(data)
        self.hits = 0
        self.caching = False
        self.last = len(planned) - 1
        self.index = -1

    def enter(self, step: PipelineStep, name: str) -> Any:
        """Before a step: ``step_name`` set (and moved to the end of the keys), what the
        context holds noted, ``before_step`` hooks called. Returns the context the step
        sees (a LoggingContext that records reads when verbose)."""
        keys = self.keys
        if STEP_NAME_KEY in keys:
            del keys[STEP_NAME_KEY]
        keys[STEP_NAME_KEY] = name
        self.index += 1
        self.keys_before = len(keys)
        values = self.values
        self.counts_before = {k: len(v) for k, v in values.items()} if values else _EMPTY
        self.cache_hit = False
        for plugin in self.hooks.before_step:
            plugin.before_step(self.experiment, step)  # type: ignore[arg-type]
        if not self.verbose:
            return self.ctx
        self.view = LoggingContext(self.ctx)  # reads are recorded step by step
        return self.view

    def cached(self, step_hash: str) -> Any:
        """The step's stored output for this input, or MISS."""
        self.caching = True
        result = step_cache.load(step_hash, self.input_hash)
        self.cache_hit = result is not MISS
        self.hits += self.cache_hit
        return result

    def keep(self, step_hash: str, result: Any) -> None:
        """Store a cacheable step's fresh output."""
        step_cache.store(step_hash, self.input_hash, result)

    def leave(
        self, step: PipelineStep, name: str, params: Any, step_hash: str, result: Any
    ) -> None:
        """After a step: its result taken in (see module doc) and its provenance noted."""
        ctx = self.ctx
        metrics: Mapping[str, Any] | None = None
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], Mapping):
            data, metrics = result
            for key, value in metrics.items():
                ctx.metrics.add(key, value)
        else:
            data = result
        for plugin in self.hooks.after_step:
            plugin.after_step(self.experiment, step, data, ctx)  # type: ignore[arg-type]
        cache_hit = self.cache_hit
        if cache_hit and self.index == self.last and metrics is None and isinstance(data, Mapping):
            for key, value in data.items():  # replay a cached last step's metrics
                ctx.metrics.add(key, value)
        keys, keys_before = self.keys, self.keys_before
        # keys are only ever added, so the new ones are the last len(keys) - keys_before
        wrote = (
            {k: {"before": None, "after": keys[k]} for k in list(keys)[keys_before:]}
            if len(keys) != keys_before
            else {}
        )
        changed = {}
        counts_before = self.counts_before
        for key, vals in self.values.items():
            n = counts_before.get(key, 0)
            if len(vals) != n:
                changed[key] = {"before": tuple(vals[:n]), "after": tuple(vals)}
        output_hash = step_cache.data_hash(data)
        self.records.append(
            {
                "step": name,
                "params": params.copy() if type(params) is dict else params,
                "step_hash": step_hash,
                "input_hash": self.input_hash,
                "output_hash": output_hash,
                "cache_hit": cache_hit,
                "ctx_changes": {
                    "reads": dict(self.view.reads) if self.view is not None else {},
                    "wrote": wrote,
                    "metrics": changed,
                },
            }
        )
        self.data, self.input_hash = data, output_hash  # the next step's input

    def end(self) -> tuple[Any, list[dict[str, Any]]]:
        """After the last step: the final data and the steps' provenance (the cache hit
        rate logged when a step caches)."""
        if self.caching:
            _log.info("Cache hit rate: %d/%d", self.hits, len(self.records))
        return self.data, self.records


def run_steps(
    data: Any,
    ctx: FrozenContext,
    planned: list[PlannedStep],
    verbose: bool = False,
    experiment: ExperimentLike | None = None,
    records: list[dict[str, Any]] | None = None,
    hooks: StepHooks | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    """Run ``planned`` steps on ``data``; returns the final data and the steps' provenance
    records (appended to ``records`` when given: a private list per cell, so concurrent
    cells never share one). ``hooks`` default to the experiment's plugins with step hooks; a
    run works them out once for all its cells. An async step runs on this thread's private
    event loop; ``arun_steps`` is the twin that awaits it on the running loop."""
    run = _Pass(data, ctx, verbose, experiment, planned, records, hooks)
    for step, name, params, step_hash, caches in planned:
        view = run.enter(step, name)
        result = run.cached(step_hash) if caches else MISS
        if result is MISS:
            try:
                result = step(run.data, view)
                if type(result) not in _NEVER_AWAITABLE and inspect.isawaitable(result):
                    result = await_here(result)
            except Exception as exc:
                raise PipelineExecutionError(name, exc) from exc
            if caches:
                run.keep(step_hash, result)  # a CacheError is the cache's, not the step's
        run.leave(step, name, params, step_hash, result)
    return run.end()


async def arun_steps(
    data: Any,
    ctx: FrozenContext,
    planned: list[PlannedStep],
    verbose: bool = False,
    experiment: ExperimentLike | None = None,
    records: list[dict[str, Any]] | None = None,
    hooks: StepHooks | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    """Async twin of ``run_steps``: an async step is awaited on the running loop."""
    run = _Pass(data, ctx, verbose, experiment, planned, records, hooks)
    for step, name, params, step_hash, caches in planned:
        view = run.enter(step, name)
        result = run.cached(step_hash) if caches else MISS
        if result is MISS:
            try:
                result = step(run.data, view)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                raise PipelineExecutionError(name, exc) from exc
            if caches:
                run.keep(step_hash, result)
        run.leave(step, name, params, step_hash, result)
    return run.end()
