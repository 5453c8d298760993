"""The aggregator: records folded in canonical order whatever order they come in, and an
Aggregator built from chunks of replicates (a process worker's, absorbed by the driver) equal
to one that folded every replicate itself."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from parity_fixtures import build

from crystallize_dist import SerialExecution
from crystallize_dist.engine.aggregate import Aggregator, aggregate
from crystallize_dist.engine.plan import RunPlan

PLAN = RunPlan(master_seed=7, replicates=6, treatments=("t1", "t2"))


def _record(cond: str, rep: int, *, ok: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "condition": cond,
        "replicate": rep,
        "seed": PLAN.seed(rep),
        "status": "ok" if ok else "error",
        "metrics": {"x": [rep + 0.5], "cond": [cond]} if ok else {},
        "error": None if ok else {"type": "ValueError", "message": f"{cond} {rep} failed"},
        "seeded": [],
        "steps": [{"step": "S", "rep": rep, "cond": cond}] if ok else [],
        "artifacts": [{"name": f"a{rep}", "step": "S", "path": f"/tmp/{cond}/{rep}"}]
        if ok and rep % 2
        else [],
        "timing": {"started": 1000.0 + rep, "duration": 0.5},
        "worker": {"host": "h", "pid": 1},
        **extra,
    }


def _records() -> list[dict[str, Any]]:
    """Every cell of PLAN but: baseline 2 failed (its treatments ran anyway, as on workers),
    t1 of replicate 4 failed, t2 of replicate 5 never came back."""
    out = []
    for rep in range(PLAN.replicates):
        for cond in PLAN.conditions:
            if (cond, rep) == ("t2", 5):
                continue
            out.append(_record(cond, rep, ok=(cond, rep) not in {("baseline", 2), ("t1", 4)}))
    return out


def _view(result: Any) -> tuple[Any, ...]:
    """Everything the aggregate decides, in the order it holds it."""
    prov = result.provenance
    return (
        result.metrics,
        list(result.errors),
        {k: str(v) for k, v in result.errors.items()},
        prov["seeds"],
        {c: list(steps.items()) for c, steps in prov["ctx_changes"].items()},
        list(prov["cells"].items()),
        prov.get("missing"),
        {name: dict(by_cond) for name, by_cond in result.artifacts.items()},
        result.timestamp,
    )


def test_records_fold_in_canonical_order_whatever_order_they_arrive_in() -> None:
    records = _records()
    expected = _view(aggregate(PLAN, records))
    for seed in range(5):
        shuffled = list(records)
        random.Random(seed).shuffle(shuffled)
        assert _view(aggregate(PLAN, shuffled)) == expected


def test_the_aggregate_applies_crystallizes_rules() -> None:
    result = aggregate(PLAN, _records())
    kept = [0, 1, 3, 4, 5]  # baseline 2 failed: its replicate's treatments are dropped
    assert result.metrics.baseline.metrics["x"] == [r + 0.5 for r in kept]
    assert result.metrics.treatments["t1"].metrics["x"] == [r + 0.5 for r in kept if r != 4]
    assert result.metrics.treatments["t2"].metrics["x"] == [r + 0.5 for r in kept if r != 5]
    assert sorted(result.errors) == ["baseline_rep_2", "t1_rep_4"]
    assert result.missing == ["t2:5"]
    assert set(result.provenance["ctx_changes"]["baseline"]) == set(kept)
    # every record that came back has its summary, the dropped treatment cells included
    assert len(result.provenance["cells"]) == len(_records())


def test_the_first_record_of_a_cell_wins() -> None:
    records = _records()
    late = _record("baseline", 0, note="late")
    late["metrics"] = {"x": [99.0], "cond": ["baseline"]}
    result = aggregate(PLAN, [*records, late])
    assert result.metrics.baseline.metrics["x"][0] == 0.5


@pytest.mark.parametrize("cuts", [[], [1], [2, 3], [1, 2, 3, 4, 5]])
def test_chunks_absorbed_in_order_equal_one_fold(cuts: list[int]) -> None:
    records = _records()
    by_rep: dict[int, list[Any]] = {}
    for rec in records:
        by_rep.setdefault(rec["replicate"], []).append(rec)

    def aligned(rep: int) -> list[Any]:
        mine = {rec["condition"]: rec for rec in by_rep[rep]}
        return [mine.get(cond) for cond in PLAN.runs]

    whole = Aggregator(PLAN)
    for rep in range(PLAN.replicates):
        whole.fold(rep, aligned(rep))
    driver = Aggregator(PLAN)
    bounds = [0, *cuts, PLAN.replicates]
    for start, end in itertools.pairwise(bounds):
        part = Aggregator(PLAN)  # what a worker folds, and sends back pickled
        for rep in range(start, end):
            part.fold(rep, aligned(rep))
        driver.absorb(part)
    assert _view(driver.result()) == _view(whole.result()) == _view(aggregate(PLAN, records))


def test_serial_and_process_results_hold_the_same_provenance() -> None:
    """SerialExecution folds each replicate as it ends, the process pool absorbs its
    workers' chunks: the results agree on more than the digest."""
    from crystallize_dist import ParallelExecution

    serial = build(SerialExecution()).run()
    process = build(ParallelExecution(executor_type="process", max_workers=2)).run()
    assert process.digest == serial.digest
    for key in ("seeds", "plan_seeds", "ctx_changes"):
        assert process.provenance[key] == serial.provenance[key], key
    cells, other = serial.provenance["cells"], process.provenance["cells"]
    assert list(other) == list(cells)  # canonical order
    assert {k: (c["seed"], c["status"]) for k, c in other.items()} == {
        k: (c["seed"], c["status"]) for k, c in cells.items()
    }
    assert {c["worker"]["pid"] for c in other.values()} != {
        c["worker"]["pid"] for c in cells.values()
    }


@pytest.mark.parametrize("chunk", [1, 4, 10_000])
def test_a_results_json_written_piece_by_piece_is_the_same_text(chunk: int) -> None:
    """``write_json`` (what ``result --format json`` writes for big results) encodes the
    per-cell provenance a chunk of cells at a time: the text is ``to_json(indent=None)``'s."""
    import io

    from crystallize_dist.model.result_stream import write_json

    result = aggregate(PLAN, _records())
    result.provenance["note"] = "\0cells\0 is only a string"
    out = io.StringIO()
    write_json(result, out, chunk=chunk)
    assert out.getvalue() == result.to_json(indent=None)


def test_a_big_results_json_is_safe_on_a_terminal_piece_by_piece() -> None:
    """``result --format json`` writes a big result through ``PlainJsonWriter``: control
    characters in any piece come out as \\u escapes, and the JSON value is the same."""
    import io
    import json

    from crystallize_dist.cli.text import PlainJsonWriter
    from crystallize_dist.model.result_stream import write_json

    result = aggregate(PLAN, _records())
    result.provenance["cells"]["baseline:1"]["note"] = "\x1b[31mred\x07"
    out = io.StringIO()
    write_json(result, PlainJsonWriter(out), chunk=2)
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "\\u001b[31mred\\u0007" in text
    assert json.loads(text) == json.loads(result.to_json(indent=None))
