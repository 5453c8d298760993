"""Pipeline: runs steps in order, unpacks metrics, calls step hooks and records provenance."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import os
import pickle
import tempfile
import threading
from collections.abc import Awaitable, Generator, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystallize_dist.constants import STEP_NAME_KEY
from crystallize_dist.core.context import FrozenContext, LoggingContext
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

#: A coroutine-free driver protocol: the generator yields awaitables and is sent results.
Drive = Generator[Awaitable[Any], Any, Any]


#: A step as a run sees it, looked up once per run instead of once per cell:
#: ``(step, class name, params, step_hash)``.
PlannedStep = tuple[PipelineStep, str, Any, str]


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
        return [(s, type(s).__name__, s.params, s.step_hash) for s in self.steps]

    # -- the one implementation, driven sync or async --------------------------------------
    def _execute(
        self,
        data: Any,
        ctx: FrozenContext,
        *,
        verbose: bool,
        experiment: Experiment | None,
        planned: list[PlannedStep] | None = None,
        records: list[dict[str, Any]] | None = None,
        hooks: StepHooks | None = None,
    ) -> Drive:
        """Run the steps; provenance goes to ``records`` (a private list per cell, so
        concurrent cells never share it) and to ``get_provenance()``. ``planned`` (see
        ``plan``) and ``hooks`` (the experiment's plugins with step hooks) are worked out
        here when not given; a run works them out once for all its cells."""
        if hooks is None:
            hooks = StepHooks.of(experiment.plugins) if experiment is not None else _NO_HOOKS
        if planned is None:
            planned = self.plan()
        records = [] if records is None else records
        before_step, after_step = hooks.before_step, hooks.after_step
        keys = ctx._data  # the context's own dict: steps only ever add keys to it
        values = ctx.metrics._values
        hits = 0
        cacheable = False
        last = len(planned) - 1
        input_hash = data_hash(data)
        for i, (step, name, params, step_hash) in enumerate(planned):
            keys.pop(STEP_NAME_KEY, None)  # step_name is reset, and moves to the end
            keys[STEP_NAME_KEY] = name
            keys_before = len(keys)
            counts_before = {k: len(v) for k, v in values.items()} if values else _EMPTY
            for plugin in before_step:
                plugin.before_step(experiment, step)  # type: ignore[arg-type]
            view: Any = LoggingContext(ctx) if verbose else ctx
            cache_hit = False
            try:
                result = _MISS
                if step.cacheable:
                    cacheable = True
                    result = _cache_load(step_hash, input_hash)
                    cache_hit = result is not _MISS
                if result is _MISS:
                    result = step(data, view)
                    if type(result) not in _NEVER_AWAITABLE and inspect.isawaitable(result):
                        result = yield result
                    if step.cacheable:
                        _cache_store(step_hash, input_hash, result)
            except Exception as exc:
                raise PipelineExecutionError(name, exc) from exc
            metrics: Mapping[str, Any] | None = None
            if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], Mapping):
                data, metrics = result
                for key, value in metrics.items():
                    ctx.metrics.add(key, value)
            else:
                data = result
            for plugin in after_step:
                plugin.after_step(experiment, step, data, ctx)  # type: ignore[arg-type]
            if cache_hit:
                hits += 1
                if i == last and metrics is None and isinstance(data, Mapping):
                    for key, value in data.items():
                        ctx.metrics.add(key, value)
            # keys are only ever added, so the new ones are the last len(keys) - keys_before
            wrote = (
                {k: {"before": None, "after": keys[k]} for k in list(keys)[keys_before:]}
                if len(keys) != keys_before
                else {}
            )
            changed = {}
            for key, vals in values.items():
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
                        "reads": dict(view.reads) if verbose else {},
                        "wrote": wrote,
                        "metrics": changed,
                    },
                }
            )
            input_hash = output_hash  # the next step's input is this step's output
        if cacheable:
            _log.info("Cache hit rate: %d/%d", hits, len(planned))
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
        out = drive_sync(self._execute(data, ctx, verbose=verbose, experiment=experiment))
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
        out = await drive_async(self._execute(data, ctx, verbose=verbose, experiment=experiment))
        return (out, self.get_provenance()) if return_provenance else out


# --- drivers for generators that yield awaitables ------------------------------------------------
_loops = threading.local()


def _await_here(awaitable: Awaitable[Any]) -> Any:
    """Run one awaitable to completion on this thread's private event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            "an async step cannot run synchronously inside a running event loop; "
            "use `await experiment.arun(...)` or AsyncExecution"
        )
    loop = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _loops.loop = loop

    async def _wrap() -> Any:
        return await awaitable

    return loop.run_until_complete(_wrap())


def drive_sync(gen: Drive) -> Any:
    """Run a driver generator to completion, awaiting what it yields on a private loop."""
    try:
        pending = next(gen)
        while True:
            try:
                value = _await_here(pending)
            except BaseException as exc:  # hand the failure back to the generator
                pending = gen.throw(exc)
            else:
                pending = gen.send(value)
    except StopIteration as stop:
        return stop.value


async def drive_async(gen: Drive) -> Any:
    """Run a driver generator on the running loop, awaiting what it yields."""
    try:
        pending = next(gen)
        while True:
            try:
                value = await pending
            except BaseException as exc:
                pending = gen.throw(exc)
            else:
                pending = gen.send(value)
    except StopIteration as stop:
        return stop.value
