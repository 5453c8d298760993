"""Executor parity: serial, process, thread and async runs of a stochastic experiment whose
cells sometimes fail give the same digest, metrics, seeds and error keys (DESIGN.md §4.2)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from parity_fixtures import FRAGILE_AT, FRAGILE_EVERY, REPLICATES, build

from crystallize_dist import (
    AsyncExecution,
    BasePlugin,
    ParallelExecution,
    Result,
    SerialExecution,
)

EXECUTORS: dict[str, Any] = {
    "process": lambda: ParallelExecution(executor_type="process", max_workers=2),
    "thread": lambda: ParallelExecution(executor_type="thread", max_workers=4),
    "async": AsyncExecution,
}


def _errors(result: Result) -> dict[str, tuple[str, str]]:
    """Error key -> (exception type name, message)."""
    return {
        key: (getattr(exc, "error_type", type(exc).__name__), str(exc))
        for key, exc in result.errors.items()
    }


def _failed_reps(result: Result, condition: str) -> set[int]:
    prefix = f"{condition}_rep_"
    return {int(k[len(prefix) :]) for k in result.errors if k.startswith(prefix)}


def _run(executor: BasePlugin) -> Result:
    return build(executor).run()


@pytest.fixture()
def serial() -> Result:
    return _run(SerialExecution())


def test_serial_run_has_every_kind_of_failure(serial: Result) -> None:
    base = _failed_reps(serial, "baseline")
    risky = _failed_reps(serial, "risky")
    fragile = _failed_reps(serial, "fragile")
    assert base, "no baseline failure: pick another MASTER_SEED"
    assert risky, "no treatment step failure: pick another MASTER_SEED"
    expected_fragile = {r for r in range(REPLICATES) if r % FRAGILE_EVERY == FRAGILE_AT} - base
    assert fragile == expected_fragile
    # the datasource error arrives unwrapped; step errors as PipelineExecutionError
    for r in fragile:
        kind, message = _errors(serial)[f"fragile_rep_{r}"]
        assert kind == "ConnectionError"
        assert message == f"source unavailable for replicate {r}"
    for r in base | risky:
        err = serial.errors[f"{'baseline' if r in base else 'risky'}_rep_{r}"]
        assert getattr(err, "error_type", None) == "PipelineExecutionError"
        assert "unlucky draw" in str(err)


def test_failed_baseline_drops_that_replicates_treatments(serial: Result) -> None:
    base = _failed_reps(serial, "baseline")
    ok = [r for r in range(REPLICATES) if r not in base]
    assert serial.metrics.baseline.metrics["replicate"] == ok
    for name, tm in serial.metrics.treatments.items():
        reps = tm.metrics["replicate"]
        assert not base & set(reps), f"{name} kept metrics of a failed baseline replicate"
        assert not base & _failed_reps(serial, name), f"{name} has errors for skipped cells"
        assert reps == [r for r in ok if r not in _failed_reps(serial, name)]
        assert len(tm.metrics["value"]) == len(tm.metrics["scaled"]) == len(reps)
    # the skipped treatment cells are not needed: a finished run has nothing missing
    assert serial.missing == [] and "missing" not in serial.provenance
    seeds = serial.provenance["seeds"]
    assert len(seeds["baseline"]) == len(ok)
    assert len(seeds["risky"]) == len(serial.metrics.treatments["risky"].metrics["value"])


@pytest.mark.parametrize("name", sorted(EXECUTORS))
def test_executor_matches_serial(name: str, serial: Result) -> None:
    other = _run(EXECUTORS[name]())
    assert other.digest == serial.digest
    assert other.metrics == serial.metrics
    assert sorted(other.errors) == sorted(serial.errors)
    assert _errors(other) == _errors(serial)
    assert other.provenance["seeds"] == serial.provenance["seeds"]


def test_arun_with_async_execution_matches_serial(serial: Result) -> None:
    other = asyncio.run(build(AsyncExecution()).arun())
    assert other.digest == serial.digest
    assert _errors(other) == _errors(serial)


def test_thread_parity_holds_over_repeated_runs(serial: Result) -> None:
    digests = {
        _run(ParallelExecution(executor_type="thread", max_workers=8)).digest for _ in range(5)
    }
    assert digests == {serial.digest}
