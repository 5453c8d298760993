"""Local executors: SerialExecution, ParallelExecution (threads or processes), AsyncExecution.

Each one only decides *where* a replicate's cells run (see ``replicates.py``); the process
pool is in ``process_pool.py``. Given a ``replicate_fn`` other than a run's own (code that
calls an executor directly, as Crystallize's tests do), they behave as Crystallize's:
SerialExecution and AsyncExecution await an async ``replicate_fn`` and return a coroutine.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from crystallize_dist.constants import VALID_EXECUTOR_TYPES
from crystallize_dist.engine.aggregate import Aggregator
from crystallize_dist.engine.process_pool import run_processes
from crystallize_dist.engine.progress import progress
from crystallize_dist.engine.replicates import ReplicateResult
from crystallize_dist.engine.runspec import resolve
from crystallize_dist.errors import InvalidOptionError
from crystallize_dist.model.awaiting import await_here
from crystallize_dist.model.plugins import BasePlugin, ExperimentLike, SeedPlugin

_log = logging.getLogger("crystallize")


def _call(replicate_fn: Callable[[int], Any], rep: int) -> Any:
    out = replicate_fn(rep)
    # a custom async replicate_fn given to a sync executor
    if type(out) is not ReplicateResult and inspect.isawaitable(out):
        out = await_here(out)
    return out


def _has_seed_plugin(experiment: Any) -> bool:
    get_plugin = getattr(experiment, "get_plugin", None)
    return callable(get_plugin) and get_plugin(SeedPlugin) is not None


@dataclass
class SerialExecution(BasePlugin):
    """Run replicates one after another in this thread (the default executor)."""

    progress: bool = False

    def run_experiment_loop(
        self, experiment: ExperimentLike, replicate_fn: Callable[[int], Any]
    ) -> Any:
        """Each replicate's output in order; for the run's own runner, its Aggregator with
        every replicate folded as soon as it ran (its records are not kept until the end);
        for an ``async def`` replicate_fn, a coroutine of the outputs."""
        reps = progress(
            range(experiment.replicates), experiment.replicates, "Replicates", self.progress
        )
        fold_all = getattr(replicate_fn, "fold_all", None)
        if fold_all is not None:  # the run's own runner: fold each replicate as it ends
            return fold_all(reps)
        if inspect.iscoroutinefunction(replicate_fn):
            return self._await_each(replicate_fn, reps)
        return [_call(replicate_fn, rep) for rep in reps]

    @staticmethod
    async def _await_each(replicate_fn: Callable[[int], Any], reps: Any) -> list[Any]:
        return [await replicate_fn(rep) for rep in reps]


@dataclass
class ParallelExecution(BasePlugin):
    """Run replicates on a thread pool or a process pool."""

    max_workers: int | None = None
    executor_type: str = "thread"
    progress: bool = False

    def _workers(self, replicates: int) -> int:
        cpus = os.cpu_count() or 1
        default = max(1, cpus - 1) if self.executor_type == "process" else (cpus or 8)
        return self.max_workers or min(replicates, default)

    def run_experiment_loop(
        self, experiment: ExperimentLike, replicate_fn: Callable[[int], Any]
    ) -> Any:
        """Each replicate's output, in order (threads), or the run's Aggregator with every
        replicate folded (processes)."""
        if inspect.iscoroutinefunction(replicate_fn):
            raise TypeError(
                "ParallelExecution got an async replicate_fn; "
                "use AsyncExecution for async experiments"
            )
        if self.executor_type not in VALID_EXECUTOR_TYPES:
            raise InvalidOptionError(
                f"executor_type must be one of {sorted(VALID_EXECUTOR_TYPES)}, "
                f"got {self.executor_type!r}"
            )
        workers = self._workers(experiment.replicates)
        if self.executor_type == "thread":
            return self._threads(experiment, replicate_fn, workers)
        return self._processes(experiment, replicate_fn, workers)

    def _threads(
        self, experiment: ExperimentLike, replicate_fn: Callable[[int], Any], workers: int
    ) -> list[Any]:
        if _has_seed_plugin(experiment):
            _log.warning(
                "ParallelExecution(executor_type='thread') shares the global random / numpy "
                "generators between threads, so steps that draw from them are not "
                "reproducible; draw from ctx.rng (numpy Generator) or ctx.random "
                "(random.Random), which are seeded per cell, or use executor_type='process'"
            )
        reps = experiment.replicates
        out: list[Any] = [None] * reps
        with ThreadPoolExecutor(max_workers=workers) as pool:
            # the first replicate runs alone: its check of the global generators
            # (model/first_replicate.py) must not see other threads' cells seed them
            first = pool.submit(_call, replicate_fn, 0)
            wait([first])
            futures = [
                (first, 0),
                *((pool.submit(_call, replicate_fn, r), r) for r in range(1, reps)),
            ]
            for fut, rep in progress(futures, reps, "Replicates", self.progress):
                out[rep] = fut.result()
        return out

    def _processes(
        self, experiment: ExperimentLike, replicate_fn: Callable[[int], Any], workers: int
    ) -> Aggregator:
        """The run's Aggregator (see ``process_pool``). Processes run the experiment's own
        replicates: the run ``replicate_fn`` belongs to, else (a replicate_fn of another
        kind, as Crystallize ignores it too) the experiment as it is."""
        spec = getattr(replicate_fn, "spec", None)
        if spec is None:
            spec = resolve(experiment, hypotheses=[], replicates=experiment.replicates)  # type: ignore[arg-type]
        return run_processes(spec, workers, show_progress=self.progress)


async def _ready(value: Any) -> Any:
    return value


@dataclass
class AsyncExecution(BasePlugin):
    """Run every replicate concurrently on the event loop (for ``async def`` steps)."""

    progress: bool = False

    async def _gather(self, experiment: ExperimentLike, replicate_fn: Any) -> list[Any]:
        if _has_seed_plugin(experiment):
            _log.warning(
                "AsyncExecution runs cells concurrently on one event loop, so steps that "
                "draw from the global random / numpy generators after an await are not "
                "reproducible; draw from ctx.rng or ctx.random, which are seeded per cell"
            )
        acall = getattr(replicate_fn, "acall", None)

        async def one(rep: int) -> Any:
            if acall is not None:
                return await acall(rep)
            out = replicate_fn(rep)
            return await out if inspect.isawaitable(out) else out

        tasks = [one(r) for r in range(experiment.replicates)]
        if tasks:  # the first replicate alone, for its check of the global generators
            first = await tasks[0]
            tasks[0] = _ready(first)
        if self.progress and experiment.replicates > 1:
            try:
                from tqdm.asyncio import tqdm
            except ImportError:
                pass
            else:
                return list(await tqdm.gather(*tasks, desc="Replicates"))
        return list(await asyncio.gather(*tasks))

    def run_experiment_loop(
        self, experiment: ExperimentLike, replicate_fn: Callable[[int], Any]
    ) -> Any:
        return self._gather(experiment, replicate_fn)
