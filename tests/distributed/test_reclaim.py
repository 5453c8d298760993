"""Heartbeats and reclaim on fakeredis: which nodes are live, which held messages go back to
the queue, and what a heartbeat says. The same code runs against real workers killed with
kill -9 in tests/integration/test_liveness.py."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.heartbeat import NodeBeat, held
from crystallize_dist.distributed.reclaim import (
    UNACKED,
    UNACKED_INDEX,
    all_nodes,
    live_nodes,
    reclaim_orphans,
    restore,
)

GRACE = 30.0


def settings() -> Settings:
    return Settings.from_env(broker_url="redis://fake/0", heartbeat_interval=5.0,
                             heartbeat_grace=GRACE)  # fmt: skip


def beat(client: Any, node: str, at: float, **body: Any) -> None:
    client.set(C.key_node(node), json.dumps({"node": node, "last_beat": at, **body}))
    client.zadd(C.KEY_NODES, {node: at})


def message(tag: str, run_id: str = "r1", task: str = C.TASK_RUN_CELLS) -> str:
    payload = {
        "body": "e30=",
        "headers": {"task": task, "id": tag, "redelivered": False},
        "properties": {"delivery_tag": tag, "delivery_info": {"routing_key": "q"}},
    }
    return json.dumps([payload, "", "q"])


def deliver(client: Any, tag: str, at: float, **kw: Any) -> None:
    """A message a worker took at ``at`` and has not acknowledged (as kombu keeps it)."""
    client.hset(UNACKED, tag, message(tag, **kw))
    client.zadd(UNACKED_INDEX, {tag: at})


@pytest.fixture
def client() -> Any:
    return fakeredis.FakeRedis()


def test_live_nodes_are_those_that_beat_within_the_grace_period(client: Any) -> None:
    now = time.time()
    beat(client, "fresh@a", now - 1)
    beat(client, "silent@b", now - GRACE - 1)
    beat(client, "stopped@c", now - 1, stopped=True)
    client.set(C.key_node("garbage@d"), b"{not json")
    client.zadd(C.KEY_NODES, {"garbage@d": now})
    assert set(live_nodes(client, GRACE, now)) == {"fresh@a"}
    assert set(all_nodes(client)) == {"fresh@a", "silent@b", "stopped@c"}


def test_restore_puts_the_message_back_marked_redelivered_under_a_new_tag(client: Any) -> None:
    deliver(client, "t1", time.time() - 100)
    assert restore(client, "t1") is True
    assert not client.hexists(UNACKED, "t1") and client.zscore(UNACKED_INDEX, "t1") is None
    (raw,) = client.lrange("q", 0, -1)
    payload = json.loads(raw)
    assert payload["headers"]["redelivered"] is True
    assert payload["properties"]["delivery_info"]["redelivered"] is True
    # a late acknowledgement of the old tag by its first holder cannot remove the new copy
    assert payload["properties"]["delivery_tag"] not in ("t1", "")
    assert restore(client, "t1") is False  # gone already: nothing is sent twice


def test_restore_leaves_messages_that_are_not_ours_to_kombu(client: Any) -> None:
    deliver(client, "other", time.time() - 100, task="someone.elses.task")
    client.hset(UNACKED, "broken", b"not json")
    client.zadd(UNACKED_INDEX, {"broken": 1.0})
    assert restore(client, "other") is False and restore(client, "broken") is False
    assert client.hexists(UNACKED, "other") and client.hexists(UNACKED, "broken")
    assert client.llen("q") == 0


def test_only_messages_of_silent_workers_delivered_before_the_grace_period_go_back(
    client: Any,
) -> None:
    now = time.time()
    beat(client, "alive@a", now - 2, held=["held-by-live"])
    beat(client, "dead@b", now - GRACE - 5, held=["held-by-dead"])
    deliver(client, "held-by-live", now - 100)
    deliver(client, "held-by-dead", now - 100)
    deliver(client, "just-taken", now - 1)  # its holder may not have beaten since
    assert reclaim_orphans(client, settings()) == ["held-by-dead"]
    assert client.llen("q") == 1
    assert set(k.decode() for k in client.hkeys(UNACKED)) == {"held-by-live", "just-taken"}
    assert client.get(C.KEY_REAPER) is None  # the mutex is let go
    assert reclaim_orphans(client, settings()) == []  # nothing is reclaimed twice


def test_one_reaper_at_a_time(client: Any) -> None:
    deliver(client, "orphan", time.time() - 100)
    client.set(C.KEY_REAPER, "another process")
    assert reclaim_orphans(client, settings()) == []
    assert client.hexists(UNACKED, "orphan")
    client.delete(C.KEY_REAPER)
    assert reclaim_orphans(client, settings()) == ["orphan"]


def request(run_id: Any, cells: Any, tag: str | None, task: str = C.TASK_RUN_CELLS) -> Any:
    return SimpleNamespace(task_name=task, args=(run_id, cells),
                           message=SimpleNamespace(delivery_tag=tag))  # fmt: skip


def test_held_lists_our_messages_and_their_cells_and_ignores_the_rest() -> None:
    requests = [
        request("r1", [["baseline", 0, 7], ["t", 1, 8]], "a"),
        request("r1", [["baseline", 2, 9]], "b"),
        request("r2", [["baseline", 0, 1]], None),
        request("r1", [["x", 0, 1]], "c", task="other.task"),
        request(5, "not cells", "d"),
        SimpleNamespace(),
    ]
    tags, cells = held(requests)
    assert tags == {"a": 2, "b": 1}
    assert cells == {"r1": ["baseline:0", "t:1", "baseline:2"], "r2": ["baseline:0"]}


def test_a_heartbeat_says_what_the_node_holds_counts_what_it_finished_and_keeps_runs_alive(
    client: Any,
) -> None:
    s = settings().replace(result_ttl=1000)
    node = NodeBeat(s, "w1@host", "prefork", 2)
    node.client = client
    client.set(C.key_manifest("r1"), "{}")  # a run key: its TTL is refreshed by each beat
    node.beat([request("r1", [["baseline", 0, 7], ["baseline", 1, 8]], "a")])
    body = json.loads(client.get(C.key_node("w1@host")))
    assert body["held"] == ["a"] and body["runs"] == {"r1": ["baseline:0", "baseline:1"]}
    assert body["cells_done"] == 0 and body["stopped"] is False
    assert 0 < client.ttl(C.key_manifest("r1")) <= 1000
    assert "w1@host" in live_nodes(client, GRACE)
    node.beat([])  # message "a" was acknowledged: its two cells are done
    assert json.loads(client.get(C.key_node("w1@host")))["cells_done"] == 2
    node.beat([], stopped=True)
    assert "w1@host" not in live_nodes(client, GRACE)
    assert 0 < client.ttl(C.key_node("w1@host")) <= C.NODE_TTL


@pytest.mark.parametrize(
    "forged",
    [
        {"runs": "r1", "held": {"t": 1}, "last_beat": "now"},
        {"runs": {"r1": "baseline:0"}, "held": [1, None], "cells_done": "many"},
        {"runs": {"r1": [["baseline", 0]]}, "stopped": "yes"},
        [1, 2, 3],
        "a string",
    ],
)
def test_a_forged_heartbeat_breaks_no_reader(client: Any, forged: Any) -> None:
    """Heartbeats are not signed: whatever a writer puts there, reclaim, the waiter's check
    for live workers and status still work, and the forged fields are dropped."""
    from crystallize_dist.distributed.status import RunStatus, worker_views

    now = time.time()
    client.set(C.key_node("forged@x"), json.dumps(forged))
    client.zadd(C.KEY_NODES, {"forged@x": now})
    deliver(client, "orphan", now - 100)
    beats = live_nodes(client, GRACE, now)
    for beat in beats.values():
        assert isinstance(beat["runs"], dict) and isinstance(beat["held"], list)
        assert all(isinstance(c, str) for cells in beat["runs"].values() for c in cells)
    assert reclaim_orphans(client, settings()) == ["orphan"]
    status = RunStatus("r1", "e", 2, {"baseline": {"ok": 0, "error": 0, "pending": 2}}, 0, 0,
                       [], 0.0, None, False, 1.0)  # fmt: skip
    for view in worker_views(status, all_nodes(client), GRACE, now):
        assert view.to_dict()["in_flight"] >= 0
