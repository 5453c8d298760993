"""The waiter on fakeredis and SQLite: finished is checked against the records, an outage is
said once and ridden out, a worker's load error and an idle run are told once, and a timeout
names the run. tests/integration/test_liveness.py runs the same waiter against real workers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed import waiting
from crystallize_dist.distributed.store import RunStore, SQLiteStore
from crystallize_dist.distributed.store.redis_store import RedisStore
from crystallize_dist.distributed.waiting import Waiter, wait_for
from crystallize_dist.errors import RunTimeoutError, StoreError

MANIFEST = {
    "run_id": "r1",
    "created": 1.0,
    "experiment": {"name": "e"},
    "plan": {"master_seed": 1, "replicates": 2, "treatments": []},
}


def record(rep: int, status: str = "ok") -> dict[str, Any]:
    return {
        "condition": "baseline",
        "replicate": rep,
        "seed": rep,
        "status": status,
        "metrics": {"x": [1.0]} if status == "ok" else {},
        "error": None if status == "ok" else {"type": "E", "message": "boom"},
    }


@pytest.fixture
def client() -> Any:
    return fakeredis.FakeRedis()


@pytest.fixture
def store(client: Any) -> RunStore:
    s = RedisStore("redis://fake/0", client=client)
    s.create_run("r1", MANIFEST)
    return s


def test_counters_that_say_finished_are_not_trusted_without_the_records(
    store: RunStore, client: Any
) -> None:
    store.put_record("r1", record(0))
    client.hincrby(C.key_counters("r1"), "ok", 1)  # counters that drifted, or were forged
    client.hincrby(C.key_counters("r1"), "ok:baseline", 1)
    with pytest.raises(RunTimeoutError) as err:
        wait_for(store, "r1", timeout=0.5, poll=0.05)
    assert "run 'r1'" in str(err.value) and "crystallize-dist wait r1" in str(err.value)
    store.put_record("r1", record(1))
    assert wait_for(store, "r1", timeout=5, poll=0.05).finished


def test_a_run_with_every_record_returns_and_reports_progress(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.sqlite3")
    store.create_run("r1", MANIFEST)
    store.put_record("r1", record(0))
    store.put_record("r1", record(1, "error"))
    seen: list[int] = []
    status = wait_for(store, "r1", timeout=5, on_progress=seen.append)
    assert (status.done, status.failed, sum(seen)) == (1, 1, 2)


def test_a_cancelled_run_ends_the_wait(store: RunStore) -> None:
    store.update_state("r1", cancelled=True)
    assert wait_for(store, "r1", timeout=5, poll=0.05).cancelled


def test_an_unreachable_store_is_said_once_and_ridden_out(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = waiting.run_status
    calls = {"n": 0}

    def blinking(s: RunStore, run_id: str) -> Any:
        calls["n"] += 1
        if calls["n"] in (2, 3, 4):
            raise StoreError("cannot reach Redis at redis://fake/0")
        if calls["n"] == 6:
            store.put_record("r1", record(0))
            store.put_record("r1", record(1))
        return real(s, run_id)

    monkeypatch.setattr(waiting, "run_status", blinking)
    monkeypatch.setattr(waiting.time, "sleep", lambda s: None)
    said: list[str] = []
    assert wait_for(store, "r1", timeout=30, say=said.append).finished
    assert said[0].startswith("cannot reach Redis at redis://fake/0; trying again")
    assert "crystallize-dist wait r1" in said[0]
    assert said[1:] == ["Redis is back: still waiting for run r1"]


def test_a_timeout_while_the_store_is_unreachable_names_the_run(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(s: RunStore, run_id: str) -> Any:
        raise StoreError("cannot reach Redis")

    monkeypatch.setattr(waiting, "run_status", down)
    with pytest.raises(RunTimeoutError, match="run 'r1' has its store unreachable after 1s"):
        wait_for(store, "r1", timeout=1)


def test_load_errors_and_an_idle_run_are_told_once(
    store: RunStore, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(C, "NO_WORKER_NOTICE", 0.2)
    store.note_load_failure("r1", "w1@a", "ImportError: No module named 'sklearn'")
    settings = Settings.from_env(
        env={}, broker_url="redis://:secret@fake:6379/0", queue="q-x", heartbeat_interval=1.0,
        heartbeat_grace=2.0,
    )  # fmt: skip
    said: list[str] = []
    waiter = Waiter(store, "r1", settings, timeout=1.0, poll=0.05, say=said.append)
    waiter._client = client  # the broker's heartbeats: no node beats
    with pytest.raises(RunTimeoutError):
        waiter.wait()
    error = "ImportError: No module named 'sklearn'"
    assert said[0] == f"worker w1@a cannot load the experiment: {error}"
    (idle,) = said[1:]
    assert idle.startswith("no live worker has taken a cell of run r1 for 0s (queue 'q-x' on ")
    assert "secret" not in idle
    assert "crystallize-dist worker --broker redis://:***@fake:6379/0 -Q q-x" in idle


def test_a_live_worker_on_the_run_keeps_the_idle_notice_quiet(
    store: RunStore, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(C, "NO_WORKER_NOTICE", 0.1)
    now = time.time()
    client.set(C.key_node("w@a"), json.dumps({"node": "w@a", "runs": {"r1": ["baseline:0"]}}))
    client.zadd(C.KEY_NODES, {"w@a": now + 60})  # beats well within the grace period
    settings = Settings.from_env(env={}, broker_url="redis://fake/0")
    said: list[str] = []
    waiter = Waiter(store, "r1", settings, timeout=0.6, poll=0.05, say=said.append)
    waiter._client = client
    with pytest.raises(RunTimeoutError):
        waiter.wait()
    assert said == []
