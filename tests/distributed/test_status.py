"""run_status: elapsed time and ETA of runs that are waiting, running, cancelled or done."""

from __future__ import annotations

import time
from pathlib import Path

from crystallize_dist.distributed.status import run_status
from crystallize_dist.distributed.store import SQLiteStore

MANIFEST = {
    "run_id": "r1",
    "created": 1000.0,
    "experiment": {"name": "e"},
    "plan": {"master_seed": 1, "replicates": 4, "treatments": []},
}


def _record(rep: int) -> dict[str, object]:
    return {
        "condition": "baseline",
        "replicate": rep,
        "seed": rep,
        "status": "ok",
        "metrics": {"x": [1.0]},
        "error": None,
    }


def test_elapsed_and_eta_follow_the_run(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.sqlite3")
    t0 = time.time()
    store.create_run("r1", {**MANIFEST, "created": t0 - 60})
    waiting = run_status(store, "r1", now=t0)
    assert (round(waiting.elapsed), waiting.eta) == (60, None)  # submitted a minute ago
    # the first cell started 10 s ago
    store.start_and_put("r1", {**_record(0), "timing": {"started": t0 - 10, "duration": 1.0}})
    store.start_and_put("r1", {**_record(1), "timing": {"started": t0 - 5, "duration": 1.0}})
    running = run_status(store, "r1", now=t0)
    assert round(running.elapsed) == 10 and round(running.eta or 0) == 10  # 2 of 4 in 10 s
    store.update_state("r1", cancelled=True)
    cancelled = run_status(store, "r1", now=t0 + 5000)
    assert cancelled.eta is None  # nothing more will run
    assert 9 < cancelled.elapsed < 60  # it stopped at its last record: not still counting
