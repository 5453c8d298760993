"""The embedded default (``--local``): a run's cells on a local process pool, recorded in the
SQLite store through the same CellRunner the Celery workers use."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.driver import this_driver
from crystallize_dist.distributed.messages import cell_message
from crystallize_dist.distributed.publisher import batches
from crystallize_dist.distributed.runner import CellRunner
from crystallize_dist.distributed.store import SQLiteStore
from crystallize_dist.distributed.store.failure import mark_failed, store_failure
from crystallize_dist.engine.plan import Cell
from crystallize_dist.errors import CrystallizeError, StoreWriteError

_runner: CellRunner | None = None


def _init(path: str, settings: Settings) -> None:
    global _runner
    os.environ[C.ENV_IN_WORKER] = "1"
    # Ctrl-C in a terminal reaches the whole process group: the driver stops the pool
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
    """Run ``cells`` of ``run_id`` on ``workers`` local processes (in this process when 1).
    This process is noted as the run's driver; when the store refuses a write (a full or
    read-only disk) the run is marked failed with the cause and StoreWriteError says so."""
    workers = max(1, workers or default_workers())
    if not cells:
        run_canaries(run_id, store, settings)
        return
    try:
        store.update_state(run_id, driver=this_driver())
        _run_local(run_id, cells, store, settings, workers, cells_per_task, on_progress)
    except StoreWriteError as exc:
        cause = store_failure(exc)
        mark_failed(store, run_id, cause)
        raise StoreWriteError(
            f"run '{run_id}' failed: {cause}; once it can be, `crystallize-dist resume "
            f"{run_id} --local` runs the cells left"
        ) from exc


def _run_local(
    run_id: str,
    cells: Sequence[Cell],
    store: SQLiteStore,
    settings: Settings,
    workers: int,
    cells_per_task: int | None,
    on_progress: Callable[[int], None] | None,
) -> None:
    size = cells_per_task or max(1, min(256, len(cells) // (workers * 8) or 1))
    groups = [[cell_message(c) for c in group] for group in batches(cells, size)]
    if workers == 1:
        runner = CellRunner(store, settings)
        for group in groups:
            runner.run(run_id, group)
            if on_progress:
                on_progress(len(group))
        run_canaries(run_id, store, settings)
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
    run_canaries(run_id, store, settings)


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
    pool = ProcessPoolExecutor(
        max_workers=workers, initializer=_init, initargs=(str(store.path), settings)
    )
    try:
        futures = {pool.submit(_run_batch, run_id, g): g for g in groups}
        for fut in as_completed(futures):
            try:
                done = fut.result()
            except BrokenProcessPool:
                left.append(futures[fut])
                continue
            if on_progress:
                on_progress(done)
    except BaseException:  # Ctrl-C, or this process is stopped: stop the cells at once
        stop_pool(pool)
        raise
    pool.shutdown(wait=True)
    return left


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's processes now, cells half run included (their attempts are counted and
    they have no record: ``resume`` runs them again)."""
    pool.shutdown(wait=False, cancel_futures=True)
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout=1)
        if child.is_alive():
            child.kill()


def _canary_batch(run_id: str, keys: list[str]) -> int:
    from crystallize_dist.distributed.canary_check import check_cell
    from crystallize_dist.distributed.canary_tasks import cells_of

    assert _runner is not None, "local worker not initialised"
    for cell in cells_of(_runner.manifest(run_id), keys):
        check_cell(_runner, run_id, cell)
    return len(keys)


def run_canaries(run_id: str, store: SQLiteStore, settings: Settings) -> None:
    """The determinism canary of a ``--local`` run: its sampled cells that have no verdict
    yet run again in a fresh pool process (not the one that recorded them)."""
    from crystallize_dist.distributed.canary import sample_of

    state = store.state(run_id)
    todo = [k for k in sample_of(store.manifest(run_id)) if C.CANARY_FIELD + k not in state]
    if not todo:
        return
    pool = ProcessPoolExecutor(
        max_workers=1, initializer=_init, initargs=(str(store.path), settings)
    )
    try:
        pool.submit(_canary_batch, run_id, todo).result()
    except BaseException:
        stop_pool(pool)
        raise
    pool.shutdown(wait=True)
