"""Local executors: SerialExecution, ParallelExecution (threads or processes), AsyncExecution.

Each one only decides *where* ``run_cell`` runs. The process executor pickles the experiment
once per worker process (not per replicate) and sends cells as small messages: a list of
replicate indices in, a list of JSON-able records out.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import os
import pickle
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.core.aggregate import Aggregator, paused_gc
from crystallize_dist.core.cell import STATUS_OK, portable_steps, replicate_records
from crystallize_dist.core.plugins import BasePlugin, SeedPlugin
from crystallize_dist.core.progress import progress_bar
from crystallize_dist.errors import InvalidOptionError, UnpicklableExperimentError

if TYPE_CHECKING:
    from crystallize_dist.core.experiment import Experiment

VALID_EXECUTOR_TYPES = {"thread", "process"}
_log = logging.getLogger("crystallize")


@dataclass
class ReplicateResult:
    """The records of one replicate (baseline first), with Crystallize's old field views."""

    records: list[dict[str, Any]] = field(default_factory=list)

    def _by(self, ok: bool) -> list[dict[str, Any]]:
        return [r for r in self.records if (r["status"] == STATUS_OK) == ok]

    @property
    def baseline_metrics(self) -> dict[str, tuple[Any, ...]] | None:
        rec = next((r for r in self._by(True) if r["condition"] == BASELINE_CONDITION), None)
        return {k: tuple(v) for k, v in rec["metrics"].items()} if rec else None

    @property
    def baseline_seed(self) -> int | None:
        rec = next((r for r in self._by(True) if r["condition"] == BASELINE_CONDITION), None)
        return rec["seed"] if rec else None

    @property
    def treatment_metrics(self) -> dict[str, dict[str, tuple[Any, ...]]]:
        return {
            r["condition"]: {k: tuple(v) for k, v in r["metrics"].items()}
            for r in self._by(True)
            if r["condition"] != BASELINE_CONDITION
        }

    @property
    def treatment_seeds(self) -> dict[str, int]:
        return {
            r["condition"]: r["seed"]
            for r in self._by(True)
            if r["condition"] != BASELINE_CONDITION
        }

    @property
    def errors(self) -> dict[str, str]:
        return {
            f"{r['condition']}_rep_{r['replicate']}": r["error"]["message"] for r in self._by(False)
        }

    @property
    def provenance(self) -> dict[str, Any]:
        return {r["condition"]: r.get("steps", []) for r in self._by(True)}


def flatten_results(out: Any) -> list[dict[str, Any]]:
    """Records from what an executor returned: ReplicateResults, record lists or records
    (records that are dicts are taken as they are; other mappings are copied into dicts)."""
    records: list[dict[str, Any]] = []
    for item in out or []:
        if isinstance(item, ReplicateResult):
            records.extend(item.records)
        elif type(item) is list:  # a replicate's records, e.g. from the process pool
            records.extend(r if type(r) is dict else dict(r) for r in item)
        elif type(item) is dict:  # a record
            records.append(item)
        elif isinstance(item, Mapping):
            records.append(dict(item))
        elif isinstance(item, Iterable):
            records.extend(r if type(r) is dict else dict(r) for r in item)
        else:
            raise TypeError(f"executor returned {type(item).__name__}, expected records")
    return records


def _call(replicate_fn: Callable[[int], Any], rep: int) -> Any:
    out = replicate_fn(rep)
    # a custom async replicate_fn given to a sync executor
    if type(out) is not ReplicateResult and inspect.isawaitable(out):
        from crystallize_dist.core.loops import await_here

        out = await_here(out)
    return out


@dataclass
class SerialExecution(BasePlugin):
    """Run replicates one after another in this thread (the default executor)."""

    progress: bool = False

    def run_experiment_loop(
        self, experiment: Experiment, replicate_fn: Callable[[int], Any]
    ) -> Any:
        """Each replicate's output in order; for the run's own runner, its Aggregator with
        every replicate folded as soon as it ran (its records are not kept until the end)."""
        bar = progress_bar(experiment.replicates, "Replicates", self.progress)
        try:
            fold_all = getattr(replicate_fn, "fold_all", None)
            if fold_all is not None:  # the run's own runner: fold each replicate as it ends
                return fold_all(bar)
            out = []
            for rep in range(experiment.replicates):
                out.append(_call(replicate_fn, rep))
                bar.update(1)
            return out
        finally:
            bar.close()


# --- process pool: experiment once per worker, replicate indices as messages ----------------
_WORKER_EXPERIMENT: Experiment | None = None


def _init_worker(blob: bytes) -> None:
    global _WORKER_EXPERIMENT
    _WORKER_EXPERIMENT = pickle.loads(blob)


def _run_chunk(reps: list[int]) -> bytes:
    """Run replicates in a worker and fold them here, each as soon as it ran; the chunk's
    Aggregator comes back pickled (step provenance made plain only when it cannot be
    pickled as recorded), for the driver to absorb."""
    exp = _WORKER_EXPERIMENT
    assert exp is not None and exp._active is not None, "worker not initialised"
    spec = exp._active
    folder = Aggregator(spec.plan)
    for r in reps:
        folder.fold(r, replicate_records(exp, spec, r, spec.plan.seed(r)), fresh=True)
    try:
        return pickle.dumps(folder, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        for by_replicate in folder.ctx_changes.values():
            for r, steps in by_replicate.items():
                by_replicate[r] = portable_steps(steps)
        return pickle.dumps(folder, protocol=pickle.HIGHEST_PROTOCOL)


def _culprit(experiment: Experiment) -> str:
    """Name the parts of the experiment that cannot be pickled."""
    parts: list[tuple[str, Any]] = [
        ("datasource " + type(experiment.datasource).__name__, experiment.datasource)
    ]
    parts += [(f"step {type(s).__name__}", s) for s in experiment.pipeline.steps]
    parts += [(f"treatment {t.name!r}", t) for t in experiment.treatments]
    parts += [(f"initial_ctx[{k!r}]", v) for k, v in experiment._initial_ctx.items()]
    parts += [(f"plugin {type(p).__name__}", p) for p in experiment.plugins]
    bad = []
    for label, obj in parts:
        try:
            pickle.dumps(obj)
        except Exception as exc:
            bad.append(f"{label} ({type(exc).__name__}: {exc})")
    return "; ".join(bad) or "unknown part"


def pickle_experiment(experiment: Experiment) -> bytes:
    """The experiment pickled for worker processes, or a clear UnpicklableExperimentError.

    Hypotheses stay behind (the driver verifies them), so a lambda verifier cannot block a
    process run.
    """
    shipped = copy.copy(experiment)
    shipped._hypotheses = []
    if shipped._active is not None:
        shipped._active = replace(shipped._active, hypotheses=[])
    try:
        return pickle.dumps(shipped)
    except Exception as exc:
        steps = ", ".join(type(s).__name__ for s in experiment.pipeline.steps)
        raise UnpicklableExperimentError(
            f"experiment '{experiment.name or '<unnamed>'}' cannot be sent to worker "
            f"processes: {_culprit(experiment)}. Steps: {steps}. Define steps, datasources "
            "and treatments at module level, and wrap unpicklable resources (connections, "
            "models) with resource_factory in initial_ctx."
        ) from exc


def _chunks(
    n: int, workers: int, *, factor: int = 2, largest: int = 512, tail: int = 32
) -> list[list[int]]:
    """Replicate indices in guided (shrinking) chunks: each is ``remaining / (factor *
    workers)`` long, at most ``largest`` and at least ``n / (tail * workers)``. Big early
    chunks keep per-message overhead low for tiny cells; small late chunks keep the workers
    finishing together for slow cells (the floor stops a tail of one-cell messages, each a
    round trip, when there are thousands of cells)."""
    out: list[list[int]] = []
    start = 0
    smallest = max(1, n // (tail * workers))
    while start < n:
        size = max(smallest, min(largest, -(-(n - start) // (factor * workers))))
        out.append(list(range(start, min(n, start + size))))
        start += size
    return out


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
        self, experiment: Experiment, replicate_fn: Callable[[int], Any]
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
        reps = experiment.replicates
        workers = self._workers(reps)
        bar = progress_bar(reps, "Replicates", self.progress)
        try:
            if self.executor_type == "thread":
                return self._threads(experiment, replicate_fn, workers, bar)
            return self._processes(experiment, workers, bar)
        finally:
            bar.close()

    def _threads(
        self, experiment: Experiment, replicate_fn: Callable[[int], Any], workers: int, bar: Any
    ) -> list[Any]:
        if experiment.get_plugin(SeedPlugin) is not None:
            _log.warning(
                "ParallelExecution(executor_type='thread') shares the global random / numpy "
                "generators between threads, so steps that draw from them are not "
                "reproducible; draw from ctx.rng (numpy Generator) or ctx.random "
                "(random.Random), which are seeded per cell, or use executor_type='process'"
            )
        out: list[Any] = [None] * experiment.replicates
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_call, replicate_fn, r): r for r in range(experiment.replicates)}
            for fut, rep in futures.items():
                out[rep] = fut.result()
                bar.update(1)
        return out

    def _processes(self, experiment: Experiment, workers: int, bar: Any) -> Aggregator:
        """The run's Aggregator, each chunk of replicates folded in order as it comes back."""
        spec = experiment._active
        if spec is None:
            raise RuntimeError("ParallelExecution runs processes inside Experiment.run")
        experiment._step_plan()  # hash the step sources once here, not in every worker
        blob = pickle_experiment(experiment)
        chunks = _chunks(experiment.replicates, workers)
        folder = Aggregator(spec.plan)
        pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(blob,))
        try:
            futures: list[Future[bytes]] = [pool.submit(_run_chunk, c) for c in chunks]
            # no more work: each worker exits once the queue is done (its exit overlaps the
            # last chunks being absorbed here; the pool's own thread reaps it)
            pool.shutdown(wait=False)
            for fut, chunk in zip(futures, chunks, strict=True):
                part = fut.result()
                with paused_gc():  # plain data: no cycles to look for while it is read
                    folder.absorb(pickle.loads(part))
                bar.update(len(chunk))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        return folder


@dataclass
class AsyncExecution(BasePlugin):
    """Run every replicate concurrently on the event loop (for ``async def`` steps)."""

    progress: bool = False

    async def _gather(self, experiment: Experiment, replicate_fn: Any) -> list[Any]:
        if experiment.get_plugin(SeedPlugin) is not None:
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

        return list(await asyncio.gather(*(one(r) for r in range(experiment.replicates))))

    def run_experiment_loop(
        self, experiment: Experiment, replicate_fn: Callable[[int], Any]
    ) -> Any:
        return self._gather(experiment, replicate_fn)
