"""One contract for every RunStore: SQLite, Redis on fakeredis, and Redis on a real server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from crystallize_dist.distributed.store import RunStore, SQLiteStore
from crystallize_dist.distributed.store.base import CellStart
from crystallize_dist.distributed.store.redis_store import RedisStore
from crystallize_dist.errors import CorruptRecordError, RunNotFoundError, StoreError


def record(cond: str, rep: int, status: str = "ok", value: float = 1.0) -> dict[str, Any]:
    return {
        "condition": cond,
        "replicate": rep,
        "seed": rep,
        "status": status,
        "metrics": {"x": [value]} if status == "ok" else {},
        "error": None if status == "ok" else {"type": "E", "message": "boom"},
    }


def ran(rec: dict[str, Any], started: float) -> dict[str, Any]:
    """``rec`` of a cell that started at ``started`` and ran for 1 ms."""
    return {**rec, "timing": {"started": started, "duration": 0.001}}


@pytest.fixture(params=["sqlite", "fakeredis", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[RunStore]:
    if request.param == "sqlite":
        s: RunStore = SQLiteStore(tmp_path / "runs.sqlite3")
    elif request.param == "fakeredis":
        import fakeredis

        s = RedisStore("redis://fake/0", client=fakeredis.FakeRedis())
    else:
        s = RedisStore(request.getfixturevalue("redis_url"))
    yield s
    s.close()


MANIFEST = {
    "run_id": "r1",
    "created": 1.0,
    "plan": {"replicates": 3, "master_seed": 1},
    "experiment": {"name": "e"},
}


def test_create_and_read_manifest(store: RunStore) -> None:
    store.create_run("r1", MANIFEST)
    assert store.manifest("r1") == MANIFEST
    assert store.exists("r1") and not store.exists("r2")
    assert store.run_ids() == ["r1"]


def test_run_ids_newest_first(store: RunStore) -> None:
    store.create_run("old", {**MANIFEST, "created": 1.0})
    store.create_run("new", {**MANIFEST, "created": 2.0})
    assert store.run_ids() == ["new", "old"]
    assert store.run_ids(limit=1) == ["new"]


def test_duplicate_run_id_is_refused(store: RunStore) -> None:
    store.create_run("r1", MANIFEST)
    with pytest.raises(StoreError, match="already exists"):
        store.create_run("r1", MANIFEST)


def test_unknown_run_raises_run_not_found(store: RunStore) -> None:
    with pytest.raises(RunNotFoundError, match="nope"):
        store.manifest("nope")
    with pytest.raises(RunNotFoundError):
        list(store.iter_records("nope"))


def test_first_write_wins_and_counts_duplicates(store: RunStore) -> None:
    store.create_run("r1", MANIFEST)
    assert store.put_record("r1", record("baseline", 0, value=1.0)) is True
    assert store.put_record("r1", record("baseline", 0, value=2.0)) is False
    rec = store.get_record("r1", "baseline", 0)
    assert rec is not None and rec["metrics"] == {"x": [1.0]}
    c = store.counters("r1")
    assert c["ok"] == 1 and c["ok:baseline"] == 1 and c["duplicates"] == 1
    (only,) = list(store.iter_records("r1"))
    assert only["duplicates"] == 1


def test_batch_put_mixes_new_and_existing(store: RunStore) -> None:
    store.create_run("r1", MANIFEST)
    store.put_record("r1", record("baseline", 0))
    out = store.put_records(
        "r1", [record("baseline", 0), record("baseline", 1), record("t", 1, "error")]
    )
    assert out == [False, True, True]
    c = store.counters("r1")
    assert (c["ok"], c["failed" if "failed" in c else "error"]) == (2, 1)
    assert c["error:t"] == 1


def test_attempts_count_per_cell(store: RunStore) -> None:
    store.create_run("r1", MANIFEST)
    assert store.start_cell("r1", "baseline:0") == CellStart(attempt=1)
    assert store.start_cell("r1", "baseline:0") == CellStart(attempt=2)
    assert store.start_cell("r1", "t:0") == CellStart(attempt=1)
    assert store.attempts("r1") == {"baseline:0": 2, "t:0": 1}
    assert store.counters("r1")["attempts"] == 3
    store.put_record("r1", record("baseline", 0))
    (rec,) = list(store.iter_records("r1"))
    assert rec["attempts"] == 2


def test_start_cell_reports_cancellation_atomically(store: RunStore) -> None:
    store.create_run("r1", MANIFEST)
    assert store.start_cell("r1", "baseline:0") == CellStart(attempt=1)
    store.update_state("r1", cancelled=True)
    assert store.start_cell("r1", "baseline:1") == CellStart(cancelled=True)
    store.update_state("r1", cancelled=False)
    assert store.start_cell("r1", "baseline:2") == CellStart(attempt=1)
    assert store.attempts("r1") == {"baseline:0": 1, "baseline:2": 1}


def test_cells_a_cancel_skipped_are_noted_for_resume(store: RunStore) -> None:
    store.create_run("r1", MANIFEST)
    store.update_state("r1", cancelled=True)
    assert store.start_cell("r1", "baseline:1").cancelled
    assert store.put_ran("r1", [ran(record("t", 3), 1.0)]) == [CellStart(cancelled=True)]
    assert store.start_cell("r1", "baseline:1").cancelled  # noted once
    store.update_state("r1", cancelled=False)
    assert store.take_skipped("r1") == {"baseline:1", "t:3"}
    assert store.take_skipped("r1") == set()  # taken
    assert store.start_cell("r1", "baseline:1") == CellStart(attempt=1)
    assert store.take_skipped("r1") == set()


def test_starting_a_recorded_cell_counts_a_duplicate_and_does_not_run_it(
    store: RunStore,
) -> None:
    store.create_run("r1", MANIFEST)
    store.put_record("r1", record("baseline", 0))
    assert store.start_cell("r1", "baseline:0") == CellStart(recorded=True)
    assert store.counters("r1")["duplicates"] == 1
    (rec,) = list(store.iter_records("r1"))
    assert rec["duplicates"] == 1 and rec["attempts"] == 0


def test_advance_writes_a_record_and_starts_the_next_cell_together(store: RunStore) -> None:
    store.create_run("r1", MANIFEST)
    assert store.advance("r1", None, "baseline:0") == (None, CellStart(attempt=1))
    written, start = store.advance("r1", record("baseline", 0), "baseline:1")
    assert written is True and start == CellStart(attempt=1)
    assert store.advance("r1", record("baseline", 1), None) == (True, None)
    assert store.advance("r1", record("baseline", 1), None) == (False, None)
    c = store.counters("r1")
    assert (c["ok"], c["attempts"], c["duplicates"]) == (2, 2, 1)


def test_start_and_put_starts_a_cell_that_ran_and_writes_its_record(store: RunStore) -> None:
    """A quick cell's first delivery: its start is counted and its record written together,
    after it ran; a start counted before (a delivery that died) makes this attempt 2."""
    store.create_run("r1", MANIFEST)
    assert store.start_and_put("r1", ran(record("baseline", 0), 100.0)) == (True, CellStart(1))
    assert store.start_cell("r1", "baseline:1") == CellStart(1)  # then its process died
    assert store.start_and_put("r1", ran(record("baseline", 1), 101.0)) == (True, CellStart(2))
    c = store.counters("r1")
    assert (c["ok"], c["ok:baseline"], c["attempts"], c["first_at"]) == (2, 2, 3, 100.0)
    assert c["last_at"] > 101.0  # when it was written, not when it started
    assert store.attempts("r1") == {"baseline:0": 1, "baseline:1": 2}
    rec = store.get_record("r1", "baseline", 1)
    assert rec is not None and rec["metrics"] == {"x": [1.0]}


def test_start_and_put_drops_the_record_of_a_recorded_or_cancelled_cell(
    store: RunStore,
) -> None:
    store.create_run("r1", MANIFEST)
    store.put_record("r1", record("baseline", 0, value=1.0))
    written, start = store.start_and_put("r1", ran(record("baseline", 0, value=2.0), 1.0))
    assert written is None and start == CellStart(recorded=True)
    rec = store.get_record("r1", "baseline", 0)
    assert rec is not None and rec["metrics"] == {"x": [1.0]}  # first write still wins
    assert store.counters("r1")["duplicates"] == 1
    store.update_state("r1", cancelled=True)
    written, start = store.start_and_put("r1", ran(record("baseline", 1), 1.0))
    assert written is None and start == CellStart(cancelled=True)
    assert store.get_record("r1", "baseline", 1) is None  # no cell starts after a cancel
    assert store.take_skipped("r1") == {"baseline:1"}  # resume sends it again
    c = store.counters("r1")
    assert (c["ok"], c.get("attempts", 0), c["duplicates"]) == (1, 0, 1)


def test_put_ran_starts_many_cells_and_writes_their_records_in_one_call(store: RunStore) -> None:
    """A flush of cells that ran ahead of their starts: each is started (its attempt counted)
    and recorded, a cell with a record is a duplicate whose new record is dropped, and the
    counters move as for one cell at a time (per status, condition and node)."""
    store.create_run("r1", MANIFEST)
    store.put_record("r1", record("baseline", 0, value=1.0))
    assert store.start_cell("r1", "t:1").attempt == 1  # a delivery that died after its start
    batch = [
        {**ran(record("baseline", 0, value=9.0), 50.0), "worker": {"node": "w1@h"}},
        {**ran(record("baseline", 1), 40.0), "worker": {"node": "w1@h"}},
        {**ran(record("t", 1, "error"), 60.0), "worker": {"node": "w2@h"}},
    ]
    starts = store.put_ran("r1", batch)
    assert starts == [CellStart(recorded=True), CellStart(1), CellStart(2)]
    c = store.counters("r1")
    assert (c["ok"], c["error"], c["ok:baseline"], c["error:t"]) == (2, 1, 2, 1)
    assert (c["node:w1@h"], c["node:w2@h"], c["duplicates"], c["attempts"]) == (1, 1, 1, 3)
    rec = store.get_record("r1", "baseline", 0)
    assert rec is not None and rec["metrics"] == {"x": [1.0]}  # the first write won
    by_cell = {(r["condition"], r["replicate"]): r for r in store.iter_records("r1")}
    assert by_cell[("t", 1)]["attempts"] == 2 and by_cell[("baseline", 1)]["attempts"] == 1
    assert by_cell[("baseline", 0)]["duplicates"] == 1
    assert store.attempts("r1") == {"baseline:1": 1, "t:1": 2}
    assert store.delete_records("r1", ["t:1"]) == 1  # what its write counted is taken back
    c = store.counters("r1")
    assert (c["error"], c["error:t"], c["node:w2@h"]) == (0, 0, 0)


def test_put_ran_of_a_cancelled_or_deleted_run_writes_nothing(store: RunStore) -> None:
    store.create_run("r1", MANIFEST)
    store.put_record("r1", record("baseline", 0))
    store.update_state("r1", cancelled=True)
    batch = [ran(record("baseline", r), 1.0) for r in range(3)]
    starts = store.put_ran("r1", batch)
    assert starts == [
        CellStart(recorded=True),
        CellStart(cancelled=True),
        CellStart(cancelled=True),
    ]
    assert store.count_records("r1") == 1 and store.take_skipped("r1") == {
        "baseline:1",
        "baseline:2",
    }
    store.delete_run("r1")
    assert store.put_ran("r1", batch) == [CellStart(gone=True)] * 3
    assert not store.exists("r1")


def test_iter_records_pages_through_everything(store: RunStore) -> None:
    store.create_run("r1", MANIFEST)
    store.put_records("r1", [record("baseline", r) for r in range(257)])
    got = list(store.iter_records("r1", page_size=50))
    assert sorted(r["replicate"] for r in got) == list(range(257))


def test_has_and_delete_records_adjust_counters(store: RunStore) -> None:
    store.create_run("r1", MANIFEST)
    assert store.start_cell("r1", "t:0").attempt == 1
    store.put_records("r1", [record("baseline", 0), record("t", 0, "error")])
    assert store.has_records("r1", ["baseline:0", "t:0", "t:1"]) == [True, True, False]
    assert store.attempts("r1") == {"t:0": 1}
    assert store.delete_records("r1", ["t:0", "t:1"]) == 1
    assert "t:0" not in store.attempts("r1")  # a fresh attempt budget
    assert store.get_record("r1", "t", 0) is None
    c = store.counters("r1")
    assert c["error"] == 0 and c["error:t"] == 0 and c["ok"] == 1
    assert store.put_record("r1", record("t", 0)) is True


def test_workers_and_state(store: RunStore) -> None:
    store.create_run("r1", MANIFEST)
    store.note_worker("r1", "host-a", {"python": "3.11"})
    assert store.workers("r1") == {"host-a": {"python": "3.11"}}
    assert not store.cancelled("r1")
    store.update_state("r1", cancelled=True, resumes=1)
    assert store.cancelled("r1") and store.state("r1")["resumes"] == 1
    with pytest.raises(RunNotFoundError):
        store.update_state("nope", cancelled=True)


def test_blobs_round_trip(store: RunStore) -> None:
    store.put_blob("abc", b"\x00\x01zip")
    assert store.get_blob("abc") == b"\x00\x01zip"
    assert store.get_blob("missing") is None


def test_concurrent_writers_write_each_cell_once(store: RunStore) -> None:
    store.create_run("r1", MANIFEST)
    results: list[bool] = []
    lock = threading.Lock()

    def writer(value: float) -> None:
        for r in range(30):
            ok = store.put_record("r1", record("baseline", r, value=value))
            with lock:
                results.append(ok)

    threads = [threading.Thread(target=writer, args=(float(i),)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 30 and results.count(False) == 90
    c = store.counters("r1")
    assert c["ok"] == 30 and c["duplicates"] == 90


def test_corrupted_record_is_a_clear_error(store: RunStore) -> None:
    store.create_run("r1", MANIFEST)
    store.put_record("r1", record("baseline", 0))
    if isinstance(store, SQLiteStore):
        store._db().execute("UPDATE records SET record = '{not json' WHERE cell = 'baseline:0'")
    else:
        assert isinstance(store, RedisStore)
        store.r.hset("cdist:run:{r1}:records", "baseline:0", "{not json")
    with pytest.raises(CorruptRecordError, match="baseline:0"):
        store.get_record("r1", "baseline", 0)
    # streaming flags the damaged cell as failed instead of hiding every other record
    store.put_record("r1", record("baseline", 1))
    by_cell = {(r["condition"], r["replicate"]): r for r in store.iter_records("r1")}
    assert by_cell[("baseline", 1)]["status"] == "ok"
    bad = by_cell[("baseline", 0)]
    assert bad["status"] == "error" and bad["error"]["type"] == "CorruptRecordError"
    assert "baseline:0" in bad["error"]["message"]
    assert store.delete_records("r1", ["baseline:0"]) == 1


def test_redis_store_survives_a_flushed_script_cache(redis_url: str) -> None:
    """After a Redis restart the server has forgotten our Lua scripts: the hot paths (a
    start sent before the cell runs, the record written with the next start, and the
    records of quick cells with their starts) load them again instead of failing."""
    import redis

    s = RedisStore(redis_url)
    try:
        s.create_run("r1", MANIFEST)
        assert s.advance("r1", None, "baseline:0")[1] == CellStart(1, False, False)
        redis.Redis.from_url(redis_url).script_flush()
        written, start = s.advance("r1", record("baseline", 0), "baseline:1")
        assert written is True and start == CellStart(1, False, False)
        redis.Redis.from_url(redis_url).script_flush()
        assert s.start_and_put("r1", ran(record("baseline", 3), 1.0)) == (True, CellStart(1))
        assert s.counters("r1")["ok"] == 2
    finally:
        s.close()


def _corrupt(store: RunStore, cell: str, text: str) -> None:
    """Overwrite a stored record's text behind the store's back, as a damaged disk or a
    hostile writer would. The store's own note of what the write counted stays (a column
    of the SQLite row; in Redis, the note after the text - see store/scripts.py)."""
    if isinstance(store, SQLiteStore):
        store._db().execute("UPDATE records SET record = ? WHERE cell = ?", (text, cell))
    else:
        assert isinstance(store, RedisStore)
        raw = store.r.hget("cdist:run:{r1}:records", cell)
        note = raw.rpartition(b"\x1f")[2]
        store.r.hset("cdist:run:{r1}:records", cell, text.encode() + b"\x1f" + note)


def test_deleting_a_record_takes_back_what_its_write_counted(store: RunStore) -> None:
    """The counters follow what is stored: deleting a record - also one corrupted or rewritten
    with another status since - takes back exactly the status its write counted."""
    store.create_run("r1", MANIFEST)
    store.put_record("r1", {**record("baseline", 0), "worker": {"node": "w1@h"}})
    store.put_record("r1", record("baseline", 1, status="error"))
    store.put_record("r1", record("t", 0))
    _corrupt(store, "baseline:0", "{not json")
    _corrupt(store, "baseline:1", '{"condition":"baseline","replicate":1,"status":"ok"}\n[]')
    assert store.count_records("r1") == 3
    assert store.delete_records("r1", ["baseline:0", "baseline:1", "t:1"]) == 2
    c = store.counters("r1")
    assert (c["ok"], c["error"], c["ok:baseline"], c["error:baseline"]) == (1, 0, 0, 0)
    assert c["ok:t"] == 1 and c["node:w1@h"] == 0
    assert store.count_records("r1") == 1


def test_a_deleted_run_is_gone_and_a_late_write_recreates_nothing(store: RunStore) -> None:
    store.create_run("r1", MANIFEST)
    store.put_record("r1", record("baseline", 0))
    store.note_worker("r1", "w1", {"python": "3"})
    assert store.delete_run("r1") is True
    assert not store.exists("r1") and store.run_ids() == []
    # a worker that was still running a cell of the run finds it gone and writes nothing
    assert store.advance("r1", record("baseline", 1), "baseline:2") == (None, CellStart(gone=True))
    assert store.start_and_put("r1", record("baseline", 3)) == (None, CellStart(gone=True))
    assert not store.exists("r1") and store.count_records("r1") == 0
    assert store.delete_run("r1") is False


def test_runs_created_before_a_time(store: RunStore) -> None:
    import time

    store.create_run("r1", MANIFEST)
    assert store.runs_created_before(time.time() + 60) == ["r1"]
    assert store.runs_created_before(0.5) == []


@pytest.mark.parametrize("kind", ["fakeredis", "redis"])
def test_no_key_of_a_run_being_worked_on_expires(kind: str, request: pytest.FixtureRequest) -> None:
    """Every write gives all of the run's keys (manifest and state included) their full TTL
    again: a run that lasts longer than the TTL loses nothing while it is worked on."""
    import time

    if kind == "fakeredis":
        import fakeredis

        s = RedisStore("redis://fake/0", ttl=2, client=fakeredis.FakeRedis())
    else:
        s = RedisStore(request.getfixturevalue("redis_url"), ttl=2)
    try:
        s.create_run("r1", MANIFEST)
        s.update_state("r1", cancelled=False)
        for rep in range(4):  # 4 x 0.8 s: well past the 2 s TTL
            time.sleep(0.8)
            assert s.put_record("r1", record("baseline", rep))
        assert s.exists("r1") and s.state("r1")["cancelled"] is False
        assert s.count_records("r1") == 4
        time.sleep(2.5)  # no more writes: the whole run expires together
        assert not s.exists("r1") and s.count_records("r1") == 0 and s.counters("r1") == {}
    finally:
        s.close()
