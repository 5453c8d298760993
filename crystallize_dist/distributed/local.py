"""The embedded default (``--local``): a run's cells on a local process pool, recorded in the
SQLite store through the same CellRunner the Celery workers use."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.coordinator import Submission
from crystallize_dist.distributed.messages import cell_message
from crystallize_dist.distributed.publisher import batches
from crystallize_dist.distributed.runner import CellRunner
from crystallize_dist.distributed.store import RunStore, SQLiteStore
from crystallize_dist.engine.plan import Cell, RunPlan
from crystallize_dist.errors import CrystallizeError
from crystallize_dist.model.result import Result

_runner: CellRunner | None = None


def _init(path: str, settings: Settings) -> None:
    global _runner
    os.environ[C.ENV_IN_WORKER] = "1"
    _runner = CellRunner(SQLiteStore(Path(path)), settings)


def _run_batch(run_id: str, cells: list[list[object]]) -> int:
    assert _runner is not None, "local worker not initialised"
    _runner.run(run_id, cells)
    return len(cells)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def run_local(
    run_id: str,
    cells: Sequence[Cell],
    *,
    store: SQLiteStore,
    settings: Settings,
    workers: int | None = None,
    cells_per_task: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Run ``cells`` of ``run_id`` on ``workers`` local processes (in this process when 1)."""
    workers = max(1, workers or default_workers())
    if not cells:
        return
    size = cells_per_task or max(1, min(256, len(cells) // (workers * 8) or 1))
    groups = [[cell_message(c) for c in group] for group in batches(cells, size)]
    if workers == 1:
        runner = CellRunner(store, settings)
        for group in groups:
            runner.run(run_id, group)
            if on_progress:
                on_progress(len(group))
        return
    pending = _run_pool(run_id, groups, store, settings, workers, on_progress)
    crashes = 0
    while pending:  # a cell killed its process: finish one process at a time
        crashes += 1
        if crashes > settings.max_attempts * len(pending) + 1:
            raise CrystallizeError(
                f"run '{run_id}': local worker processes keep dying; "
                f"{sum(len(g) for g in pending)} cells left (see `status --local`)"
            )
        pending = _run_pool(run_id, pending, store, settings, 1, on_progress)


def _run_pool(
    run_id: str,
    groups: list[list[list[object]]],
    store: SQLiteStore,
    settings: Settings,
    workers: int,
    on_progress: Callable[[int], None] | None,
) -> list[list[list[object]]]:
    """Run ``groups`` on a pool; returns the groups left unfinished when a worker process
    died (its cells' attempts were counted before they ran, so a cell that kills its
    process every time is recorded as failed after ``max_attempts``)."""
    left: list[list[list[object]]] = []
    with ProcessPoolExecutor(
        max_workers=workers, initializer=_init, initargs=(str(store.path), settings)
    ) as pool:
        futures = {pool.submit(_run_batch, run_id, g): g for g in groups}
        for fut in as_completed(futures):
            try:
                done = fut.result()
            except BrokenProcessPool:
                left.append(futures[fut])
                continue
            if on_progress:
                on_progress(done)
    return left


def finished_result(
    sub: Submission,
    store: RunStore,
    settings: Settings,
    *,
    local: bool,
    workers: int | None = None,
    cells_per_task: int = 1,
    timeout: float | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Result:
    """A submitted run's Result once it is finished: ``local`` runs its cells on this
    machine's pool, otherwise the workers' records are waited for (``on_progress`` is told
    of cells as they finish). The run's files are left under the artifact root as an
    in-process run leaves them."""
    from crystallize_dist.distributed.artifacts import write_run_files
    from crystallize_dist.distributed.results import load_result, wait_for

    plan = RunPlan.from_dict(sub.manifest["plan"])
    if local:
        assert isinstance(store, SQLiteStore)
        run_local(
            sub.run_id,
            list(plan.cells()),
            store=store,
            settings=settings,
            workers=workers,
            cells_per_task=None if cells_per_task == 1 else cells_per_task,
            on_progress=on_progress,
        )
    else:
        wait_for(store, sub.run_id, timeout=timeout, on_progress=on_progress)
    # the submitter's own experiment: hypotheses verified, artifacts under its own root
    result = load_result(store, sub.run_id, settings=settings, experiment=sub.experiment)
    write_run_files(sub.manifest, result)
    return result
