"""CellRunner, the worker side shared by Celery workers and the --local pool."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from crystallize_dist.config import Settings
from crystallize_dist.core.plan import RunPlan
from crystallize_dist.dist.coordinator import submit
from crystallize_dist.dist.messages import cell_message
from crystallize_dist.dist.runner import CellRunner
from crystallize_dist.dist.store import SQLiteStore

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
    from crystallize_dist.dist.coordinator import missing_cells

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
