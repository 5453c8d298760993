"""The embedded default (``--local``): a run's cells on a local process pool, recorded in the
SQLite store through the same CellRunner the Celery workers use.

The pool's processes run quick cells ahead of their starts and hand their records back in
chunks - a task returns after at most ``RECORD_FLUSH_SECONDS`` of cells - and this process,
the one writer, writes each chunk in one transaction (``RunStore.put_ran``), then sends the
task's cells left over again. A cell that is not quick is started before it runs, by the
pool process itself, as on a Celery worker. When a process dies, the chunk it was running is
lost: its cells run again one process at a time, each start counted first, so a cell that
kills its process every time is recorded as failed after ``max_attempts``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.driver import this_driver
from crystallize_dist.distributed.messages import cell_message
from crystallize_dist.distributed.publisher import batches
from crystallize_dist.distributed.runner import CellRunner
from crystallize_dist.distributed.store import SQLiteStore
from crystallize_dist.distributed.store.failure import mark_failed, store_failure
from crystallize_dist.distributed.store.records import Encoded
from crystallize_dist.engine.plan import Cell
from crystallize_dist.errors import CrystallizeError, StoreWriteError

_runner: CellRunner | None = None
Group = list[list[object]]


def _init(path: str, settings: Settings) -> None:
    global _runner
    os.environ[C.ENV_IN_WORKER] = "1"
    # Ctrl-C in a terminal reaches the whole process group: the driver stops the pool
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _runner = CellRunner(SQLiteStore(Path(path)), settings)


def _slim(record: Encoded) -> Encoded:
    """What the writer needs of a record: its text and what the store counts it under."""
    rec = record.record
    worker = {"node": (rec.get("worker") or {}).get("node")}
    timing = {"started": (rec.get("timing") or {}).get("started")}
    keep = {k: rec[k] for k in ("condition", "replicate", "status")}
    return Encoded({**keep, "worker": worker, "timing": timing}, record.text)


def _run_ahead(run_id: str, cells: Group) -> tuple[list[Encoded], int, int]:
    """A pool process: run ``cells`` (quick ones ahead of their starts, for at most
    ``RECORD_FLUSH_SECONDS``); returns the records to write, how many cells this process
    recorded itself (started before they ran) and how many of ``cells`` it handled."""
    assert _runner is not None, "local worker not initialised"
    handed: list[Encoded] = []
    counts = _runner.run(run_id, cells, speculative=True, hand_over=handed)
    done = int(counts["handled"])
    return [_slim(r) for r in handed], done - len(handed), done


def _run_careful(run_id: str, cells: Group) -> int:
    """A pool process: run ``cells``, each start counted before it runs."""
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
            runner.run(run_id, group, speculative=True)
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
        pending = _run_pool(run_id, pending, store, settings, 1, on_progress, careful=True)
    run_canaries(run_id, store, settings)


def _run_pool(
    run_id: str,
    groups: list[Group],
    store: SQLiteStore,
    settings: Settings,
    workers: int,
    on_progress: Callable[[int], None] | None,
    *,
    careful: bool = False,
) -> list[Group]:
    """Run ``groups`` on a pool, writing the records its processes hand back (see the module
    docstring); returns the groups left unfinished when a process died. ``careful``: each
    start is counted before its cell runs (after a process died)."""
    left: list[Group] = []
    pool = ProcessPoolExecutor(
        max_workers=workers, initializer=_init, initargs=(str(store.path), settings)
    )
    task = _run_careful if careful else _run_ahead
    try:
        running: dict[Future[Any], Group] = {pool.submit(task, run_id, g): g for g in groups}
        cancelled = False
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                group = running.pop(fut)
                try:
                    out = fut.result()
                except BrokenProcessPool:
                    left.append(group)
                    continue
                if careful:
                    _progress(on_progress, out)
                    continue
                records, themselves, handled = out
                starts = store.put_ran(run_id, records)
                cancelled = cancelled or any(s.cancelled or s.gone for s in starts)
                recorded = sum(1 for s in starts if s.attempt or s.recorded)
                _progress(on_progress, recorded + themselves)
                if handled < len(group) and not cancelled:
                    rest = group[handled:]
                    try:
                        running[pool.submit(task, run_id, rest)] = rest
                    except BrokenProcessPool:  # another process died meanwhile
                        left.append(rest)
            if cancelled:  # no new cell starts: tasks not yet running are dropped
                for fut in [f for f in running if f.cancel()]:
                    running.pop(fut)
    except BaseException:  # Ctrl-C, or this process is stopped: stop the cells at once
        stop_pool(pool)
        raise
    pool.shutdown(wait=True)
    return left


def _progress(on_progress: Callable[[int], None] | None, n: int) -> None:
    if on_progress and n:
        on_progress(n)


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
