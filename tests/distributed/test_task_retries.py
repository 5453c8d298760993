"""A task that fails outside experiment code never drops its cells: it is sent again while
retries are left, and otherwise (retries spent, or the retry cannot be published) its cells
without a record are recorded as InfrastructureError; when even that fails the message goes
back to the queue."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from celery.exceptions import Reject, Retry

from crystallize_dist.config import Settings
from crystallize_dist.distributed import tasks
from crystallize_dist.distributed.tasks import INFRA_RETRIES, retry_left

ARGS = ("r1", [["baseline", 0, 7], ["baseline", 1, 8]])


class FakeRunner:
    def __init__(self, fail: Exception | None = None) -> None:
        self.recorded: list[tuple[str, list[Any], str]] = []
        self.fail = fail

    def unfinished(self, run_id: str, raw: list[Any]) -> list[Any]:
        return raw[1:]  # the first cell has a record already

    def record_failure(self, run_id: str, cells: list[Any], cause: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.recorded.append((run_id, cells, cause))


class FakeTask:
    def __init__(self, retries: int, publish: Exception | None = None) -> None:
        self.request = SimpleNamespace(retries=retries, id="task-1", hostname="w@h")
        self.publish = publish
        self.retried: list[dict[str, Any]] = []

    def retry(self, **kw: Any) -> Exception:
        self.retried.append(kw)
        if self.publish is not None:
            raise self.publish
        return Retry("retry", kw.get("exc"))


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> FakeRunner:
    fake = FakeRunner()
    monkeypatch.setattr(tasks, "runner_for", lambda settings, hostname: fake)
    return fake


SETTINGS = Settings.from_env(env={}, broker_url="redis://127.0.0.1:1/0")
CAUSE = ConnectionError("Redis is loading the dataset in memory")


def test_a_task_with_retries_left_is_sent_again_with_backoff(runner: FakeRunner) -> None:
    task = FakeTask(retries=3)
    with pytest.raises(Retry):
        retry_left(task, SETTINGS, ARGS, {}, CAUSE)  # type: ignore[arg-type]
    assert task.retried[0]["countdown"] == 8 and task.retried[0]["max_retries"] == INFRA_RETRIES
    assert runner.recorded == []


def test_when_retries_are_spent_the_cells_without_a_record_are_recorded(runner: FakeRunner) -> None:
    task = FakeTask(retries=INFRA_RETRIES)
    retry_left(task, SETTINGS, ARGS, {}, CAUSE)  # type: ignore[arg-type]
    assert task.retried == []
    ((run_id, cells, cause),) = runner.recorded
    assert run_id == "r1" and len(cells) == 1  # not the one recorded already
    assert cause == (
        f"ConnectionError: Redis is loading the dataset in memory (after {INFRA_RETRIES} retries)"
    )


def test_when_the_retry_cannot_be_published_the_cells_are_recorded(runner: FakeRunner) -> None:
    task = FakeTask(retries=0, publish=OSError("broker connection lost"))
    retry_left(task, SETTINGS, ARGS, {}, CAUSE)  # type: ignore[arg-type]
    ((_, _, cause),) = runner.recorded
    assert cause.endswith("; sending it again failed: OSError: broker connection lost")


def test_when_nothing_can_be_written_the_message_goes_back_to_the_queue(
    runner: FakeRunner,
) -> None:
    runner.fail = ConnectionError("store down")
    task = FakeTask(retries=INFRA_RETRIES)
    with pytest.raises(Reject) as rejected:
        retry_left(task, SETTINGS, ARGS, {}, CAUSE)  # type: ignore[arg-type]
    assert rejected.value.requeue is True


def test_closing_a_lost_connection_with_a_detached_transport_does_not_stop_the_worker() -> None:
    """Celery's consumer closes a lost broker connection after detaching its transport;
    giving held messages back then raises AttributeError, which would end the worker."""
    from crystallize_dist.distributed.consumer import contain_close

    class Lost:
        def __init__(self, error: Exception) -> None:
            self.error = error
            self.closed = 0

        def close(self) -> None:
            self.closed += 1
            raise self.error

    detached = Lost(AttributeError("'NoneType' object has no attribute 'hostname'"))
    contain_close(detached)
    detached.close()  # logged, not raised
    assert detached.closed == 1
    refused = Lost(ConnectionError("refused"))
    contain_close(refused)
    with pytest.raises(ConnectionError):  # Celery's ignore_errors deals with these
        refused.close()


def test_workers_use_the_consumer_that_reconnects() -> None:
    from crystallize_dist.distributed.app import create_app

    app = create_app(SETTINGS)
    assert app.conf.worker_consumer == "crystallize_dist.distributed.consumer:Consumer"
