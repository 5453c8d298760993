"""The one Celery task, ``crystallize_dist.run_cells``: a thin shell around CellRunner."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from celery.exceptions import Reject, Retry, TimeLimitExceeded
from celery.signals import worker_process_init

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.messages import parse_message
from crystallize_dist.distributed.runner import CellRunner
from crystallize_dist.errors import (
    CorruptRecordError,
    RunNotFoundError,
    StoreWriteError,
    TaskMessageError,
)

_log = logging.getLogger("crystallize_dist.worker")
#: times a task that failed outside experiment code is sent again (backoff 1 s .. 60 s).
INFRA_RETRIES = 10
_runner: CellRunner | None = None


def _reset_runner(**_: Any) -> None:
    global _runner
    _runner = None  # a forked pool child opens its own connections


worker_process_init.connect(_reset_runner, weak=False)


def runner_for(settings: Settings, hostname: str | None) -> CellRunner:
    """This process's CellRunner (created on first use)."""
    global _runner
    if _runner is None:
        from crystallize_dist.distributed.store import store_for

        store = store_for(settings, retries=20)
        _runner = CellRunner(
            store,
            settings,
            node=hostname or None,
            requeue=True,
            ship_artifacts=True,
            require_bundle=True,
        )
    return _runner


class CellTask(Task):  # type: ignore[misc]  # celery has no type hints
    """Puts back the unfinished cells of a task its hard time limit killed.

    Celery acks such a message and moves on; its cells go back to the queue, where the
    attempt count bounds them (a cell killed ``max_attempts`` times is recorded as failed).
    A process that died without Celery noticing also ends this way.
    """

    settings: Settings

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        if not isinstance(exc, TimeLimitExceeded):
            return
        try:
            run_id, cells = parse_message(args, kwargs)
            runner = runner_for(self.settings, None)
            rest = runner.unfinished(run_id, cells)
            if rest:
                from crystallize_dist.distributed.publisher import enqueue

                try:
                    enqueue(self.settings, run_id, rest, len(rest), again=True)
                except Exception as err:  # no message left for these cells: record them
                    runner.record_failure(
                        run_id, rest, f"killed at its time limit and not sent again: {err}"
                    )
        except Exception as err:  # never let bookkeeping crash the worker's main process
            _log.error("task %s: could not re-enqueue after its time limit: %s", task_id, err)


def register_tasks(app: Celery, settings: Settings) -> None:
    """Register ``run_cells`` on ``app``."""

    @app.task(  # type: ignore[untyped-decorator]  # celery has no type hints
        name=C.TASK_RUN_CELLS,
        # not shared: a shared task would be copied into every app created later, so a
        # second app's run_cells would run with the first app's settings (broker, store)
        shared=False,
        base=CellTask,
        settings=settings,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
    )
    def run_cells(self: Task, *args: Any, **kwargs: Any) -> None:
        if "canary" in kwargs:  # the determinism canary's message (canary_tasks.py)
            run_canary(self, settings, args, kwargs)
            return
        try:
            run_id, cells = parse_message(args, kwargs)
            runner = runner_for(settings, self.request.hostname)
            # a cell runs while its start is on its way only on a first delivery of a first
            # sending: after any loss its attempt is counted first (bounded redelivery)
            redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
            fresh = not redelivered and not self.request.retries
            counts = runner.run(run_id, cells, speculative=fresh)
        except (TaskMessageError, RunNotFoundError, CorruptRecordError) as exc:
            # A malformed or orphaned message, or a run whose manifest cannot be read: log
            # it and drop it; nothing ran.
            _log.error("rejected task %s: %s", self.request.id, exc)
            return
        except Exception as exc:
            # Not the experiment's fault (cell errors are records): the store refused a
            # write, Redis went read-only, a limit fired outside a cell... Send the message
            # again rather than lose its cells: recorded cells are skipped, attempts counted.
            # When it cannot be sent again, its cells are recorded with the cause. A store
            # that cannot take writes at all (full, read-only) marks the run failed first,
            # so whoever waits for it is told at once.
            if isinstance(exc, StoreWriteError):
                fail_run(settings, self.request.hostname, args, kwargs, exc)
            retry_left(self, settings, args, kwargs, exc)
        if counts["requeue"]:  # this worker cannot load the experiment: let another try
            from crystallize_dist.distributed.publisher import enqueue

            _log.warning(
                "task %s: handing %d cell(s) back to the queue",
                self.request.id,
                len(counts["requeue"]),
            )
            enqueue(
                settings.replace(queue=self.request.delivery_info.get("routing_key")),
                run_id,
                counts["requeue"],
                len(counts["requeue"]),
                again=True,
            )
        if counts["duplicates"]:
            _log.info("task %s: %d cell(s) already recorded", self.request.id, counts["duplicates"])


def run_canary(task: Task, settings: Settings, args: Any, kwargs: Any) -> None:
    """Run a canary message (``canary_tasks.run_message``); a malformed one is dropped, and
    one that fails outside experiment code is sent again (a waiting submitter also sends
    lost ones again)."""
    from crystallize_dist.distributed import canary_tasks

    try:
        handbacks = canary_tasks.handbacks_of(kwargs)
        run_id, cells = parse_message(args, kwargs)
        runner = runner_for(settings, task.request.hostname)
        queue = settings.replace(queue=(task.request.delivery_info or {}).get("routing_key"))
        canary_tasks.run_message(runner, queue, run_id, cells, handbacks or 0)
    except (TaskMessageError, RunNotFoundError, CorruptRecordError) as exc:
        _log.error("rejected canary task %s: %s", task.request.id, exc)
    except Exception as exc:
        _log.error("canary task %s failed (%s: %s)", task.request.id, type(exc).__name__, exc)


def fail_run(
    settings: Settings, hostname: str | None, args: Any, kwargs: Any, exc: StoreWriteError
) -> None:
    """Mark the task's run failed: its store refused a write (see ``store/failure.py``)."""
    from crystallize_dist.distributed.store.failure import mark_failed, store_failure

    try:
        run_id, _ = parse_message(args, kwargs)
        mark_failed(runner_for(settings, hostname).store, run_id, store_failure(exc))
    except Exception as err:  # bookkeeping never hides the task's own failure
        _log.error("cannot mark the run of a failed task failed: %s", err)


def retry_left(task: Task, settings: Settings, args: Any, kwargs: Any, exc: Exception) -> None:
    """Send a task that failed outside experiment code again (backoff 1 s .. 60 s); once its
    retries are spent, or when the retry cannot be published, record each of its cells
    without a record as an InfrastructureError with the cause (``resume --retry-failed``
    runs them again). When even that cannot be written, the message goes back to the queue
    unacknowledged (``Reject``): no cell is dropped without a record."""
    retries = int(task.request.retries or 0)
    cause = f"{type(exc).__name__}: {exc}"
    if retries < INFRA_RETRIES:
        _log.error(
            "task %s failed (%s); sending it again (%d/%d)",
            task.request.id,
            cause,
            retries + 1,
            INFRA_RETRIES,
        )
        try:
            raise task.retry(exc=exc, countdown=min(60, 2**retries), max_retries=INFRA_RETRIES)
        except Retry:
            raise
        except Exception as publish_error:
            cause += f"; sending it again failed: {type(publish_error).__name__}: {publish_error}"
    else:
        cause += f" (after {INFRA_RETRIES} retries)"
    try:
        run_id, raw = parse_message(args, kwargs)
        runner = runner_for(settings, task.request.hostname)
        runner.record_failure(run_id, runner.unfinished(run_id, raw), cause)
    except Exception as err:
        _log.error(
            "task %s: cannot record its cells either (%s): back to the queue", task.request.id, err
        )
        raise Reject(str(err), requeue=True) from exc
