"""CellRunner, the worker side shared by Celery workers and the --local pool."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from crystallize_dist.config import Settings
from crystallize_dist.distributed.coordinator import submit
from crystallize_dist.distributed.messages import cell_message
from crystallize_dist.distributed.runner import CellRunner
from crystallize_dist.distributed.store import SQLiteStore
from crystallize_dist.engine.plan import RunPlan

SLOW_IMPORT = """
import time
from crystallize_dist import DataSource, Experiment, Pipeline, PipelineStep, SeedPlugin

time.sleep(0.3)  # a slow import: a second thread must wait, not see a half-made module


class Zero(DataSource):
    def fetch(self, ctx):
        return 0.0


class Draw(PipelineStep):
    def __call__(self, data, ctx):
        return data, {"x": float(ctx.rng.random())}


experiment = Experiment(Zero(), Pipeline([Draw()]), plugins=[SeedPlugin(seed=5)],
                        replicates=8)
"""


def test_threads_loading_the_experiment_at_once_all_run_their_cells(tmp_path: Path) -> None:
    src = tmp_path / "slow_import_experiment.py"
    src.write_text(SLOW_IMPORT)
    store = SQLiteStore(tmp_path / "runs.sqlite3")
    settings = Settings(home=tmp_path)
    sub = submit(str(src), settings=settings, store=store, local=True)
    plan = RunPlan.from_dict(sub.manifest["plan"])
    del sys.modules["slow_import_experiment"]  # as in a fresh worker: not imported yet
    runner = CellRunner(store, settings)
    threads = [
        threading.Thread(target=runner.run, args=(sub.run_id, [cell_message(c)]))
        for c in plan.cells()
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recs = list(store.iter_records(sub.run_id))
    assert len(recs) == 8
    assert all(r["status"] == "ok" for r in recs), [r["error"] for r in recs]


def test_a_worker_with_different_code_records_a_mismatch_and_retry_fixes_it(
    tmp_path: Path,
) -> None:
    from crystallize_dist import load_experiment
    from crystallize_dist.distributed.coordinator import missing_cells

    src = tmp_path / "submitted_experiment.py"
    src.write_text(SLOW_IMPORT.replace("time.sleep(0.3)", "pass"))
    other = tmp_path / "deployed_experiment.py"
    other.write_text(
        SLOW_IMPORT.replace("time.sleep(0.3)", "pass")
        .replace("seed=5", "seed=6")
        .replace("ctx.rng.random()", "ctx.rng.random() + 1")
    )
    store = SQLiteStore(tmp_path / "runs.sqlite3")
    settings = Settings(home=tmp_path)
    sub = submit(str(src), settings=settings, store=store, local=True)
    cells = [cell_message(c) for c in RunPlan.from_dict(sub.manifest["plan"]).cells()]

    wrong = CellRunner(store, settings, loader=lambda manifest: load_experiment(str(other))[0])
    wrong.run(sub.run_id, cells)
    recs = list(store.iter_records(sub.run_id))
    assert len(recs) == 8 and {r["error"]["type"] for r in recs} == {"CodeMismatchError"}
    assert "code differs from what was submitted" in recs[0]["error"]["message"]

    todo = missing_cells(store, sub.run_id, include_failed=True)  # resume --retry-failed
    assert len(todo) == 8
    CellRunner(store, settings).run(sub.run_id, [cell_message(c) for c in todo])
    assert all(r["status"] == "ok" for r in store.iter_records(sub.run_id))


QUICKSTART = str(Path(__file__).resolve().parents[2] / "examples" / "quickstart.py")


def _quick_run(tmp_path: Path) -> tuple[SQLiteStore, str, list[list[object]], CellRunner]:
    """A quickstart run and a runner whose process has already seen its (quick) cells."""
    store = SQLiteStore(tmp_path / "runs.sqlite3")
    settings = Settings(home=tmp_path)
    sub = submit(QUICKSTART, settings=settings, store=store, local=True, replicates=4)
    messages = [cell_message(c) for c in RunPlan.from_dict(sub.manifest["plan"]).cells()]
    runner = CellRunner(store, settings)
    assert runner.run(sub.run_id, [messages[0]], speculative=True)["ran"] == 1  # now quick
    return store, sub.run_id, messages, runner


def _count_calls(store: SQLiteStore) -> list[str]:
    """The names of the store's record-writing calls, in order, as they are made."""
    calls: list[str] = []
    for name in ("advance", "put_ran", "put_records"):
        real = getattr(store, name)
        setattr(store, name, lambda *a, _n=name, _f=real, **k: calls.append(_n) or _f(*a, **k))
    return calls


def test_a_quick_cells_first_delivery_starts_and_records_it_together(tmp_path: Path) -> None:
    store, run_id, messages, runner = _quick_run(tmp_path)
    calls = _count_calls(store)
    for message in messages[1:]:
        assert runner.run(run_id, [message], speculative=True)["ran"] == 1
    assert calls == ["put_ran"] * (len(messages) - 1)  # one store call a cell
    assert store.counters(run_id)["ok"] == len(messages)
    assert set(store.attempts(run_id).values()) == {1}
    # a redelivered message is never speculative: its start is counted before it runs
    assert runner.run(run_id, [messages[1]])["duplicates"] == 1
    assert calls[len(messages) - 1 :] == ["advance"]


def test_a_quick_cell_of_a_cancelled_run_or_with_a_record_is_dropped(tmp_path: Path) -> None:
    store, run_id, messages, runner = _quick_run(tmp_path)
    before = store.get_record(run_id, "baseline", 0)
    counts = runner.run(run_id, [messages[0]], speculative=True)  # delivered twice
    assert counts["duplicates"] == 1 and counts["ran"] == 0
    assert store.get_record(run_id, "baseline", 0) == before  # the first record stays
    store.update_state(run_id, cancelled=True)
    for message in messages[1:3]:
        counts = runner.run(run_id, [message], speculative=True)
        assert counts["cancelled"] == 1 and counts["ran"] == 0
    assert store.counters(run_id)["ok"] == 1  # nothing started after the cancel
    assert len(store.take_skipped(run_id)) == 2  # resume sends them again


def test_a_batch_of_quick_cells_writes_its_records_in_one_round_trip(tmp_path: Path) -> None:
    store, run_id, messages, runner = _quick_run(tmp_path)
    calls = _count_calls(store)
    counts = runner.run(run_id, messages[1:], speculative=True)
    assert counts["ran"] == len(messages) - 1
    assert calls == ["put_ran"]  # every record of the message at once
    assert store.counters(run_id)["ok"] == len(messages)
    assert set(store.attempts(run_id).values()) == {1}


def test_a_long_batch_flushes_its_records_as_it_goes(tmp_path: Path, monkeypatch: Any) -> None:
    """Records wait at most RECORD_FLUSH_SECONDS: a worker killed meanwhile loses no more."""
    from crystallize_dist import constants as C

    store, run_id, messages, runner = _quick_run(tmp_path)
    monkeypatch.setattr(C, "RECORD_FLUSH_SECONDS", 0.0)
    calls = _count_calls(store)
    assert runner.run(run_id, messages[1:], speculative=True)["ran"] == len(messages) - 1
    assert calls == ["put_ran"] * (len(messages) - 1)


def test_a_batch_that_finds_its_run_cancelled_starts_no_more_cells(tmp_path: Path) -> None:
    """The first flush after a cancel drops the records that ran meanwhile; the cells left
    are not run, each noted as skipped by its start (resume sends them again)."""
    store, run_id, messages, runner = _quick_run(tmp_path)
    real = store.put_ran

    def cancel_then_put(rid: str, records: Any) -> Any:
        store.update_state(rid, cancelled=True)  # cancelled while the cells ran
        return real(rid, records)

    store.put_ran = cancel_then_put  # type: ignore[method-assign]
    from crystallize_dist import constants as C

    flush, C.RECORD_FLUSH_SECONDS = C.RECORD_FLUSH_SECONDS, 0.0  # flush after the first cell
    try:
        counts = runner.run(run_id, messages[1:], speculative=True)
    finally:
        C.RECORD_FLUSH_SECONDS = flush
    assert counts["ran"] == 0 and counts["cancelled"] == len(messages) - 1
    assert store.counters(run_id)["ok"] == 1
    assert len(store.take_skipped(run_id)) == len(messages) - 1


def test_records_a_failed_flush_lost_are_written_by_the_redelivery(tmp_path: Path) -> None:
    """A flush that never reached the store (the worker died, Redis went away) loses only
    those records: the redelivered message runs the cells again, same seeds, each start
    counted first."""
    store, run_id, messages, runner = _quick_run(tmp_path)
    real = store.put_ran

    def lost(*args: Any) -> Any:
        raise OSError("the worker died before its flush reached the store")

    store.put_ran = lost  # type: ignore[method-assign]
    with pytest.raises(OSError):
        runner.run(run_id, messages[1:], speculative=True)
    assert store.count_records(run_id) == 1
    store.put_ran = real  # type: ignore[method-assign]
    counts = runner.run(run_id, messages[1:])  # the redelivery
    assert counts["ran"] == len(messages) - 1
    seeds = store.manifest(run_id)["seeds"]
    recs = list(store.iter_records(run_id))
    assert {r["attempts"] for r in recs} == {1}
    assert all(r["seed"] == seeds[r["replicate"]] for r in recs)
