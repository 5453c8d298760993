"""A big run's seed table packed in its manifest (distributed/store/seed_table.py): workers
and readers get every seed back, and ``status`` parses one string instead of the numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.canary_tasks import cells_of
from crystallize_dist.distributed.coordinator import submit
from crystallize_dist.distributed.messages import cell_message
from crystallize_dist.distributed.runner import CellRunner
from crystallize_dist.distributed.status import run_status
from crystallize_dist.distributed.store import SQLiteStore
from crystallize_dist.distributed.store.records import decode_manifest
from crystallize_dist.distributed.store.seed_table import manifest_seeds, pack_seeds
from crystallize_dist.engine.plan import Cell, RunPlan
from crystallize_dist.errors import CorruptRecordError, TaskMessageError

TRIVIAL = Path(__file__).resolve().parents[2] / "bench" / "trivial.py"


@pytest.mark.parametrize(
    ("seeds", "form"),
    [
        ([1, 2, 3], list),
        ([(r * 2654435761) % 2**32 for r in range(C.SEED_TABLE_LIST_LIMIT + 5)], "uint32"),
        ([2**40 + r for r in range(C.SEED_TABLE_LIST_LIMIT + 5)], "int64"),
        ([None] * (C.SEED_TABLE_LIST_LIMIT + 5), list),  # not integers: kept as a list
    ],
)
def test_a_seed_table_comes_back_as_it_went_in(seeds: list[int], form: object) -> None:
    packed = pack_seeds(seeds)
    assert (type(packed) is list) if form is list else list(packed) == [form]
    assert manifest_seeds({"seeds": packed}) == seeds


def test_a_malformed_packed_table_is_refused_or_empty() -> None:
    base = {"plan": {"replicates": 1, "master_seed": 1}, "experiment": {}}
    for bad in ({"uint32": 5}, {"float": "AAAA"}, {"uint32": "AA", "int64": "AA"}, "x"):
        with pytest.raises(CorruptRecordError, match="has a malformed seeds"):
            decode_manifest(json.dumps({**base, "seeds": bad}), "r1")
    assert manifest_seeds({"seeds": {"uint32": "not base64!"}}) == []
    assert manifest_seeds({"seeds": {"uint32": "AAA="}}) == []  # 2 bytes: not a seed


def test_a_big_runs_workers_check_each_seed_against_the_packed_table(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.sqlite3")
    settings = Settings(home=tmp_path)
    n = C.SEED_TABLE_LIST_LIMIT + 1
    sub = submit(str(TRIVIAL), settings=settings, store=store, replicates=n, seed=3, local=True)
    plan = RunPlan.from_dict(sub.manifest["plan"])
    stored = store.manifest(sub.run_id)
    assert list(stored["seeds"]) == ["uint32"]
    assert manifest_seeds(stored) == plan.seeds
    runner = CellRunner(store, settings)
    last = Cell("baseline", n - 1, plan.seeds[n - 1])
    counts = runner.run(sub.run_id, [cell_message(last)])
    assert counts["ran"] == 1
    (rec,) = store.iter_records(sub.run_id)
    assert rec["seed"] == plan.seeds[n - 1]
    with pytest.raises(TaskMessageError, match="seed"):
        runner.cells(sub.run_id, [cell_message(Cell("baseline", 5, plan.seeds[5] + 1))])
    assert run_status(store, sub.run_id).total == n
    # the determinism canary's cells take their seeds from the packed table too
    (canary,) = cells_of(stored, [f"baseline:{n - 1}"])
    assert canary == last
