"""CellRunner, the worker side shared by Celery workers and the --local pool."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

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


def test_a_quick_cells_first_delivery_starts_and_records_it_together(tmp_path: Path) -> None:
    store, run_id, messages, runner = _quick_run(tmp_path)
    calls: list[str] = []
    for name in ("start_cell", "start_cell_soon", "advance", "start_and_put"):
        real = getattr(store, name)
        setattr(store, name, lambda *a, _n=name, _f=real, **k: calls.append(_n) or _f(*a, **k))
    for message in messages[1:]:
        assert runner.run(run_id, [message], speculative=True)["ran"] == 1
    assert calls == ["start_and_put"] * (len(messages) - 1)  # one store call a cell
    assert store.counters(run_id)["ok"] == len(messages)
    assert set(store.attempts(run_id).values()) == {1}
    # a redelivered message is never speculative: its start is counted before it runs
    assert runner.run(run_id, [messages[1]])["duplicates"] == 1
    assert calls[len(messages) - 1] == "start_cell"


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


def test_a_speculative_batch_runs_its_first_cell_while_its_start_is_sent(tmp_path: Path) -> None:
    store, run_id, messages, runner = _quick_run(tmp_path)
    counts = runner.run(run_id, messages[1:4], speculative=True)
    assert counts["ran"] == 3
    assert store.counters(run_id)["ok"] == 4
    assert set(store.attempts(run_id).values()) == {1}
