"""The process pool behind ``ParallelExecution(executor_type="process")``.

The run is pickled once per worker process (not per replicate) and the replicates go out in
chunks of indices. Each worker folds its chunk into an Aggregator as it runs; the driver
absorbs the chunks in canonical order.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from crystallize_dist.canonical import paused_gc
from crystallize_dist.engine.aggregate import Aggregator
from crystallize_dist.engine.cell import replicate_records
from crystallize_dist.engine.progress import progress
from crystallize_dist.engine.records import portable_steps
from crystallize_dist.engine.runspec import Runnable, RunSpec
from crystallize_dist.errors import UnpicklableExperimentError

#: the run this worker process serves (set by ``_init_worker``)
_WORKER_SPEC: RunSpec | None = None


def _init_worker(blob: bytes) -> None:
    global _WORKER_SPEC
    _WORKER_SPEC = pickle.loads(blob)


def _run_chunk(reps: list[int]) -> bytes:
    """Run replicates in a worker and fold them here, each as soon as it ran; the chunk's
    Aggregator comes back pickled (step provenance made plain only when it cannot be
    pickled as recorded), for the driver to absorb."""
    spec = _WORKER_SPEC
    assert spec is not None, "worker not initialised"
    folder = Aggregator(spec.plan)
    for r in reps:
        folder.fold(r, replicate_records(spec, r, spec.plan.seed(r)), fresh=True)
    try:
        return pickle.dumps(folder, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        for by_replicate in folder.ctx_changes.values():
            for r, steps in by_replicate.items():
                by_replicate[r] = portable_steps(steps)
        return pickle.dumps(folder, protocol=pickle.HIGHEST_PROTOCOL)


def _culprit(experiment: Runnable) -> str:
    """Name the parts of the experiment that cannot be pickled."""
    parts: list[tuple[str, Any]] = [
        ("datasource " + type(experiment.datasource).__name__, experiment.datasource)
    ]
    parts += [(f"step {type(s).__name__}", s) for s in experiment.pipeline.steps]
    parts += [(f"treatment {t.name!r}", t) for t in experiment.treatments]
    parts += [(f"initial_ctx[{k!r}]", v) for k, v in experiment.initial_ctx.items()]
    parts += [(f"plugin {type(p).__name__}", p) for p in experiment.plugins]
    bad = []
    for label, obj in parts:
        try:
            pickle.dumps(obj)
        except Exception as exc:
            bad.append(f"{label} ({type(exc).__name__}: {exc})")
    return "; ".join(bad) or "unknown part"


def pickle_run(spec: RunSpec) -> bytes:
    """The run pickled for worker processes, or a clear UnpicklableExperimentError.

    Hypotheses stay behind (the driver verifies them), so a lambda verifier cannot block a
    process run.
    """
    experiment = spec.experiment
    shipped = copy.copy(experiment)
    shipped.hypotheses = []
    try:
        # the driver says the chunks' warnings as it absorbs them
        return pickle.dumps(replace(spec, hypotheses=[], experiment=shipped, say=None))
    except Exception as exc:
        steps = ", ".join(type(s).__name__ for s in experiment.pipeline.steps)
        raise UnpicklableExperimentError(
            f"experiment '{experiment.name or '<unnamed>'}' cannot be sent to worker "
            f"processes: {_culprit(experiment)}. Steps: {steps}. Define steps, datasources "
            "and treatments at module level, and wrap unpicklable resources (connections, "
            "models) with resource_factory in initial_ctx."
        ) from exc


def chunks(
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


def run_processes(spec: RunSpec, workers: int, *, show_progress: bool = False) -> Aggregator:
    """The run's Aggregator, each chunk of replicates folded in order as it comes back
    (with a progress bar of the replicates when ``show_progress``)."""
    blob = pickle_run(spec)
    parts = chunks(spec.plan.replicates, workers)
    folder = Aggregator(spec.plan)
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(blob,))

    def absorbed(futures: list[Future[bytes]]) -> Iterator[int]:
        for fut, chunk in zip(futures, parts, strict=True):
            part = fut.result()
            with paused_gc():  # plain data: no cycles to look for while it is read
                chunk_folder = pickle.loads(part)
                folder.absorb(chunk_folder)
            spec.warn(chunk_folder.warnings)
            yield from chunk

    try:
        futures = [pool.submit(_run_chunk, c) for c in parts]
        # no more work: each worker exits once the queue is done (its exit overlaps the
        # last chunks being absorbed here; the pool's own thread reaps it)
        pool.shutdown(wait=False)
        for _ in progress(absorbed(futures), spec.plan.replicates, "Replicates", show_progress):
            pass
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    return folder
