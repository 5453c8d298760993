"""Waiting for a run to finish, for ``submit --wait``, ``wait`` and ``CeleryExecution``.

The waiter polls the run's counters and says, in one line each, what a person waiting needs to
know: that no live worker is taking its cells (with the command that starts one), that Redis
cannot be reached (it keeps trying; the workers carry on), that a worker cannot load the
experiment. While it waits it also gives the messages of dead workers back to the queue and
sends cells that lost their task message again (see ``reclaim``), so a run never stalls on a
dead worker. "Finished" is checked against the records themselves, not the counters alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.status import RunStatus, lost_cells, run_status
from crystallize_dist.distributed.store import RunStore, cell_key
from crystallize_dist.distributed.store.failure import mark_failed, store_refusal
from crystallize_dist.engine.plan import RunPlan
from crystallize_dist.errors import BrokerError, RunTimeoutError, StoreError
from crystallize_dist.urls import redact


def _quiet(line: str) -> None:
    """Say nothing (the default: library callers read the status themselves)."""


class Waiter:
    """Waits for one run (see the module docstring). ``say`` prints one line to the person
    waiting; ``on_progress`` is told of cells as they finish. ``settings`` is None for a run of
    the embedded store, which has no workers and no broker."""

    def __init__(
        self,
        store: RunStore,
        run_id: str,
        settings: Settings | None = None,
        *,
        timeout: float | None = None,
        poll: float = 0.2,
        on_progress: Callable[[int], None] | None = None,
        say: Callable[[str], None] = _quiet,
        on_poll: Callable[[RunStatus], None] | None = None,
    ) -> None:
        self.store = store
        #: told of the run's status at every poll (``status --watch`` redraws with it)
        self.on_poll = on_poll
        self.run_id = run_id
        self.settings = settings
        self.timeout = timeout
        self.poll = poll
        self.on_progress = on_progress
        self.say = say
        self._seen = 0
        self._started = time.monotonic()
        self._progress_at = self._started
        self._unreachable: str | None = None
        self._told_idle = False
        self._told_errors: set[str] = set()
        self._reclaimed_at = 0.0
        self._probed_at = 0.0
        self._suspects: set[str] = set()
        self._client: Any = None
        self._canary_left = -1
        self._canary_at = self._started

    def wait(self) -> RunStatus:
        """The run's status once every cell has a record, or it is cancelled, marked failed
        or its ``--local`` driver is gone; RunTimeoutError after ``timeout`` seconds."""
        backoff = 0.5
        try:
            while True:
                try:
                    status = run_status(self.store, self.run_id)
                except (BrokerError, StoreError) as exc:
                    self._lost_contact(exc)
                    time.sleep(backoff)
                    backoff = min(10.0, backoff * 2)
                    self._check_timeout(None)
                    continue
                backoff = 0.5
                if self._unreachable is not None:
                    self.say(f"Redis is back: still waiting for run {self.run_id}")
                    self._unreachable = None
                self._count(status)
                if self.on_poll is not None:
                    self.on_poll(status)
                ended = status.cancelled or (status.finished and self._all_recorded(status))
                if ended and not self._canary_pending(status):
                    return status
                if status.failure or status.driver_gone:  # nothing will finish it now
                    return status
                refused = self._refused_write(status)
                if refused:  # the store cannot take writes, nor a mark of the failure
                    status.failure = refused
                    return status
                self._tell(status)
                self._reclaim(status)
                self._check_timeout(status)
                time.sleep(self.poll)
        finally:
            if self._client is not None:
                self._client.close()

    # -- progress --------------------------------------------------------------------------
    def _count(self, status: RunStatus) -> None:
        done = status.done + status.failed
        if done != self._seen:
            if self.on_progress is not None and done > self._seen:
                self.on_progress(done - self._seen)
            self._seen = done
            self._progress_at = time.monotonic()
            self._told_idle = False

    def _all_recorded(self, status: RunStatus) -> bool:
        """The counters say every cell has a record: check the records say so too."""
        if self.store.count_records(self.run_id) < status.total:
            return False
        plan = RunPlan.from_dict(self.store.manifest(self.run_id)["plan"])
        keys = [cell_key(c.condition, c.replicate) for c in plan.cells()]
        return all(self.store.has_records(self.run_id, keys))

    def _check_timeout(self, status: RunStatus | None) -> None:
        if self.timeout is None or time.monotonic() - self._started <= self.timeout:
            return
        where = (
            f"{status.pending} of {status.total} cells without a record"
            if status is not None
            else "its store unreachable"
        )
        raise RunTimeoutError(
            f"run '{self.run_id}' has {where} after {self.timeout:g}s; it goes on: "
            f"`crystallize-dist wait {self.run_id}` waits again, "
            f"`crystallize-dist status {self.run_id}` shows its workers"
        )

    # -- what the person waiting is told ----------------------------------------------------
    def _lost_contact(self, exc: Exception) -> None:
        message = " ".join(str(exc).split())
        if self._unreachable is None:
            self.say(
                f"{message}; trying again (the workers carry on; Ctrl-C stops waiting, and "
                f"`crystallize-dist wait {self.run_id}` waits again)"
            )
        self._unreachable = message

    def _tell(self, status: RunStatus) -> None:
        for node, error in sorted(status.load_errors.items()):
            if node not in self._told_errors:
                self._told_errors.add(node)
                self.say(f"worker {node} cannot load the experiment: {error}")
        if self.settings is None or self._told_idle:
            return
        idle = time.monotonic() - self._progress_at
        if idle < C.NO_WORKER_NOTICE or self._workers_on_run():
            return
        self._told_idle = True
        s = self.settings
        taken = "taken a cell" if status.attempts == 0 else "worked on it"
        self.say(
            f"no live worker has {taken} of run {self.run_id} for {idle:.0f}s (queue "
            f"'{s.queue}' on {redact(s.broker_url)}); start one with: crystallize-dist worker "
            f"--broker {redact(s.broker_url)} -Q {s.queue}"
        )

    def _refused_write(self, status: RunStatus) -> str | None:
        """When a run on workers has made no progress for a heartbeat interval: whether its
        store can take writes at all (``store_refusal``: a Redis out of memory, or turned
        into a read-only replica). Then the run is marked failed - when the store takes
        even that - and the cause returned; else None."""
        s = self.settings
        now = time.monotonic()
        if s is None or min(now - self._progress_at, now - self._probed_at) < s.heartbeat_interval:
            return None
        self._probed_at = now
        try:
            refusal = store_refusal(self.store)
        except (BrokerError, StoreError):
            return None  # the status poll tells of an outage
        if refusal is not None:
            mark_failed(self.store, self.run_id, refusal)
        return refusal

    # -- keeping the run going ---------------------------------------------------------------
    def _broker(self) -> Any:
        if self._client is None:
            import redis

            assert self.settings is not None
            self._client = redis.Redis.from_url(
                self.settings.broker_url, socket_connect_timeout=5, socket_timeout=10
            )
        return self._client

    def _workers_on_run(self) -> bool:
        from crystallize_dist.distributed.reclaim import live_nodes

        assert self.settings is not None
        try:
            beats = live_nodes(self._broker(), self.settings.heartbeat_grace)
        except Exception:  # the broker is unreachable: the status poll says so
            return True
        return any(self.run_id in (beat.get("runs") or {}) for beat in beats.values())

    def _reclaim(self, status: RunStatus) -> None:
        """Every heartbeat interval: give dead workers' messages back to the queue; when the
        run has made no progress for a grace period and no live worker holds one of its
        cells, send the cells without a record or a message again (seen so on two passes in
        a row, so a message on its way to a worker is not taken for lost)."""
        from crystallize_dist.distributed.publisher import enqueue
        from crystallize_dist.distributed.reclaim import reclaim_orphans

        s = self.settings
        now = time.monotonic()
        if s is None or status.pending <= 0 or now - self._reclaimed_at < s.heartbeat_interval:
            return
        self._reclaimed_at = now
        try:
            reclaim_orphans(self._broker(), s, holder=f"waiter:{self.run_id}")
            if now - self._progress_at < s.heartbeat_grace or self._workers_on_run():
                self._suspects = set()
                return
            lost = set(lost_cells(self.store, s, self.run_id))
            again = sorted(lost & self._suspects)
            self._suspects = lost - set(again)
            if again:
                cells = [
                    c for c in self._plan_cells() if cell_key(c.condition, c.replicate) in again
                ]
                enqueue(s.replace(queue=self._queue()), self.run_id, cells, 1, again=True)
                self.say(
                    f"{len(again)} cell(s) of run {self.run_id} had no record and no task "
                    "message left (lost): sent again with their seeds"
                )
        except (BrokerError, StoreError, OSError):
            return  # the next pass tries again; the status poll tells of an outage
        except Exception as exc:  # redis-py errors when the broker blinks
            if type(exc).__module__.startswith("redis"):
                return
            raise

    def _canary_pending(self, status: RunStatus) -> bool:
        """Whether the run's determinism canary still has cells to check (on workers; a
        ``--local`` run checks them before its waiter starts). Its messages that were lost
        are sent again once no verdict came for a grace period."""
        canary = status.extra.get("canary") or {}
        pending = list(canary.get("pending") or [])
        if self.settings is None or status.cancelled or not pending:
            return False
        now = time.monotonic()
        if len(pending) != self._canary_left:
            self._canary_left, self._canary_at = len(pending), now
        quiet = now - self._canary_at >= self.settings.heartbeat_grace
        if quiet and now - self._reclaimed_at >= self.settings.heartbeat_interval:
            from crystallize_dist.distributed.canary_tasks import resend_lost

            self._reclaimed_at = now
            try:
                sent = resend_lost(
                    self.store, self.settings.replace(queue=self._queue()), self.run_id, pending
                )
            except (BrokerError, StoreError, OSError):
                return True
            if sent:
                self.say(
                    f"{len(sent)} canary message(s) of run {self.run_id} were lost: sent again"
                )
        return True

    def _plan_cells(self) -> list[Any]:
        return list(RunPlan.from_dict(self.store.manifest(self.run_id)["plan"]).cells())

    def _queue(self) -> str:
        options = self.store.manifest(self.run_id).get("options", {})
        queue = options.get("queue")
        assert self.settings is not None
        return str(queue) if queue else self.settings.queue


def wait_for(
    store: RunStore,
    run_id: str,
    *,
    timeout: float | None = None,
    poll: float = 0.2,
    on_progress: Callable[[int], None] | None = None,
    settings: Settings | None = None,
    say: Callable[[str], None] = _quiet,
) -> RunStatus:
    """Wait until every cell of ``run_id`` has a record (see ``Waiter``)."""
    waiter = Waiter(
        store, run_id, settings, timeout=timeout, poll=poll, on_progress=on_progress, say=say
    )
    return waiter.wait()
