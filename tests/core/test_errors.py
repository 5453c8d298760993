"""Condition errors: keys, skipped treatments, exception objects (contract §10.5, §19.10)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from fixtures import ConstantSource, FailStep

from crystallize_dist import (
    BasePlugin,
    DataSource,
    Experiment,
    FrozenContext,
    ParallelExecution,
    Pipeline,
    PipelineExecutionError,
    SeedPlugin,
    Treatment,
)
from crystallize_dist.errors import CellError, CrystallizeError
from crystallize_dist.model.result import Result

TREATMENTS = [Treatment("t1", {}), Treatment("t2", {})]


def _run(where: list[tuple[str, int]], plugins: list[BasePlugin] | None = None) -> Result:
    exp = Experiment(
        datasource=ConstantSource(0),
        pipeline=Pipeline([FailStep(where)]),
        plugins=[SeedPlugin(seed=4), *(plugins or [])],
        treatments=TREATMENTS,
    )
    return exp.run(replicates=3)


def test_baseline_failure_skips_the_replicate_and_the_run_returns() -> None:
    result = _run([("baseline", 1), ("t1", 0)])
    assert set(result.errors) == {"baseline_rep_1", "t1_rep_0"}
    assert result.metrics.baseline.metrics["rep"] == [0, 2]
    assert result.metrics.treatments["t2"].metrics["rep"] == [0, 2]
    assert result.metrics.treatments["t1"].metrics["rep"] == [2]
    assert result.provenance["seeds"]["baseline"] == [4, 4 + 2 * 31337]
    assert result.provenance["seeds"]["t1"] == [4 + 2 * 31337]


def test_treatment_whose_every_cell_failed_has_no_seeds() -> None:
    result = _run([("t2", 0), ("t2", 1), ("t2", 2)])
    assert set(result.errors) == {"t2_rep_0", "t2_rep_1", "t2_rep_2"}
    assert "t2" not in result.provenance["seeds"]
    assert result.metrics.treatments["t2"].metrics == {}


def test_step_failures_are_pipeline_execution_errors() -> None:
    result = _run([("baseline", 0)])
    err = result.errors["baseline_rep_0"]
    assert isinstance(err, PipelineExecutionError) and isinstance(err, CrystallizeError)
    assert str(err) == "Step 'FailStep' failed: boom baseline 0"
    original = err.original_exception
    assert str(original) == "boom baseline 0"
    assert isinstance(original, CellError) and original.error_type == "ValueError"
    assert isinstance(err, CellError)
    assert err.condition == "baseline" and err.replicate == 0
    assert "ValueError: boom baseline 0" in err.traceback_str


def test_pipeline_execution_error_chains_the_original() -> None:
    ctx = FrozenContext({"condition": "baseline", "replicate": 0})
    with pytest.raises(PipelineExecutionError) as info:
        Pipeline([FailStep([("baseline", 0)])]).run(0, ctx)
    assert isinstance(info.value.original_exception, ValueError)
    assert info.value.__cause__ is info.value.original_exception
    assert info.value.step_name == "FailStep"


class BadSource(DataSource):
    def fetch(self, ctx: FrozenContext) -> Any:
        if ctx["condition"] == "t1":
            raise KeyError("no data for t1")
        return 0


class BadHook(BasePlugin):
    def before_replicate(self, experiment: Experiment, ctx: FrozenContext) -> None:
        if ctx["condition"] == "t2" and ctx["replicate"] == 1:
            raise OSError("hook failed")


def test_datasource_and_plugin_errors_arrive_unwrapped() -> None:
    exp = Experiment(
        datasource=BadSource(),
        pipeline=Pipeline([FailStep([])]),
        plugins=[SeedPlugin(seed=0), BadHook()],
        treatments=TREATMENTS,
    )
    result = exp.run(replicates=2)
    assert set(result.errors) == {"t1_rep_0", "t1_rep_1", "t2_rep_1"}
    t1 = result.errors["t1_rep_0"]
    assert not isinstance(t1, PipelineExecutionError)
    assert t1.error_type == "KeyError"  # type: ignore[attr-defined]
    assert result.errors["t2_rep_1"].error_type == "OSError"  # type: ignore[attr-defined]
    assert result.metrics.treatments["t2"].metrics["rep"] == [0]


def test_errors_cross_process_boundaries_and_json() -> None:
    result = _run([("baseline", 0), ("t2", 1)])
    for err in result.errors.values():
        clone = pickle.loads(pickle.dumps(err))
        assert clone == err and str(clone) == str(err)
        assert type(clone) is type(err)
    again = Result.from_json(result.to_json() or "")
    assert set(again.errors) == set(result.errors)
    step_err = again.errors["baseline_rep_0"]
    assert isinstance(step_err, PipelineExecutionError)
    assert str(step_err.original_exception) == "boom baseline 0"
    assert result.to_dict()["errors"]["t2_rep_1"] == "Step 'FailStep' failed: boom t2 1"


def test_thread_and_process_give_the_same_errors_and_metrics() -> None:
    where = [("baseline", 1), ("t1", 0)]
    serial = _run(where)
    thread = _run(where, [ParallelExecution(max_workers=2, executor_type="thread")])
    process = _run(where, [ParallelExecution(max_workers=2, executor_type="process")])
    assert serial.metrics == thread.metrics == process.metrics
    assert set(serial.errors) == set(thread.errors) == set(process.errors)
    assert serial.errors == process.errors
