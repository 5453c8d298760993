"""Experiment-level behaviour as in Crystallize 0.27: quick_experiment, optimize, setup and
teardown, the step cache's errors, the builder, executors called directly, small helpers."""

from __future__ import annotations

import asyncio
import random
import sys
import types
from typing import Any

import pytest
from compat_fixtures import Record, ReplicateSource

from crystallize_dist import (
    Artifact,
    AsyncExecution,
    Experiment,
    ExperimentInput,
    FrozenContext,
    ParallelExecution,
    Pipeline,
    PipelineStep,
    SerialExecution,
    Treatment,
    inject_from_ctx,
    pipeline_step,
    quick_experiment,
)
from crystallize_dist.errors import CacheError, PipelineExecutionError
from crystallize_dist.experiments.experiment_builder import ExperimentBuilder
from crystallize_dist.experiments.optimizers import BaseOptimizer, Objective


# --- quick_experiment ---------------------------------------------------------------------
def test_quick_experiment_calls_fn_with_the_config_and_maybe_the_context(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert quick_experiment(lambda config: config["v"] * 2, {"a": {"v": 5}}, 2) == {"a": [10, 10]}
    seen = quick_experiment(
        lambda config, ctx: (config, ctx["replicate"], ctx["condition"]), {"b": "cfg"}, 2, seed=3
    )
    assert seen == {"b": [("cfg", 0, "b"), ("cfg", 1, "b")]}
    assert quick_experiment(lambda ctx: ctx["seed"], replicates=1, seed=9) == {"baseline": [9]}
    counter = iter(range(10))
    assert quick_experiment(lambda: next(counter), replicates=3) == {"baseline": [0, 1, 2]}
    draws = [quick_experiment(lambda c: random.random(), {"x": {}}, 3, seed=42) for _ in range(2)]
    assert draws[0] == draws[1] and len(set(draws[0]["x"])) == 3
    quick_experiment(lambda c: 1, {"t": {}}, 2, verbose=True)
    out = capsys.readouterr().out
    assert "Running t replicate 1/2..." in out and "Running t replicate 2/2..." in out
    assert out.rstrip().endswith("Done!")


# --- optimize -------------------------------------------------------------------------------
class Grid(BaseOptimizer):
    """Tries each value of ``delta`` once and keeps the lowest mean of the metric."""

    def __init__(self, values: list[int]) -> None:
        super().__init__(Objective(metric="val", direction="minimize"))
        self.values, self.trial, self.told = values, 0, []

    def ask(self) -> list[Treatment]:
        return [
            Treatment(f"delta_{self.values[self.trial]}", {"increment": self.values[self.trial]})
        ]

    def tell(self, objective_values: dict[str, float]) -> None:
        self.told.append(objective_values)
        self.trial += 1

    def get_best_treatment(self) -> Treatment:
        best = min(range(len(self.told)), key=lambda i: self.told[i]["val"])
        return Treatment(f"delta_{self.values[best]}", {"increment": self.values[best]})


def test_optimize_asks_runs_and_tells_each_trial() -> None:
    exp = Experiment(ReplicateSource(), Pipeline([Record()]))
    grid = Grid([5, 1, 3])
    best = exp.optimize(grid, num_trials=3, replicates_per_trial=2)
    # each trial's value: the mean of the treatment's metric over its replicates (r + delta)
    assert grid.told == [{"val": 5.5}, {"val": 1.5}, {"val": 3.5}]
    assert best.name == "delta_1"
    again = Grid([2, 0])
    assert asyncio.run(exp.aoptimize(again, num_trials=2)).name == "delta_0"
    assert again.told == [{"val": 2.0}, {"val": 0.0}]

    async def inside_a_loop() -> None:
        exp.optimize(Grid([1]), num_trials=1)

    with pytest.raises(RuntimeError, match="already running"):
        asyncio.run(inside_a_loop())


# --- set-up, tear-down, the running loop --------------------------------------------------
class FailingSetup(PipelineStep):
    def __init__(self) -> None:
        self.torn_down = False

    def setup(self, ctx: FrozenContext) -> None:
        raise RuntimeError("setup failed")

    def teardown(self, ctx: FrozenContext) -> None:
        self.torn_down = True

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        return data

    @property
    def params(self) -> dict[str, Any]:
        return {}


def test_teardown_runs_when_a_setup_fails() -> None:
    step = FailingSetup()
    with pytest.raises(RuntimeError, match="setup failed"):
        Experiment(ReplicateSource(), Pipeline([step])).run()
    assert step.torn_down


def test_run_inside_a_running_loop_says_to_await_arun() -> None:
    exp = Experiment(ReplicateSource(), Pipeline([Record()]))

    async def inside() -> None:
        exp.run()

    with pytest.raises(RuntimeError, match=r"already running.*await experiment\.arun"):
        asyncio.run(inside())


def test_the_pipeline_keeps_the_last_cells_provenance() -> None:
    pipeline = Pipeline([Record()])
    Experiment(ReplicateSource(), pipeline, replicates=2).run()
    assert [r["step"] for r in pipeline.get_provenance()] == ["Record"]
    assert pipeline.get_provenance()[0]["ctx_changes"]["metrics"]["val"]["after"] == (1,)


# --- the step cache -------------------------------------------------------------------------
class Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("cannot pickle this")


class Cached(PipelineStep):
    cacheable = True

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        return Unpicklable()

    @property
    def params(self) -> dict[str, Any]:
        return {}


def test_a_cache_that_cannot_store_raises_oserror_not_a_step_error() -> None:
    with pytest.raises(OSError, match="cannot store the output") as caught:
        Pipeline([Cached()]).run(1, FrozenContext({}))
    assert isinstance(caught.value, CacheError)
    assert not isinstance(caught.value, PipelineExecutionError)
    err = Experiment(ReplicateSource(), Pipeline([Cached()])).run().errors["baseline_rep_0"]
    assert isinstance(err, OSError) and err.error_type == "CacheError"  # type: ignore[attr-defined]


# --- the builder, injection, small helpers ------------------------------------------------
def test_the_builder_keeps_each_argument_and_builds_with_defaults() -> None:
    builder = ExperimentBuilder("b")
    assert (builder._name, builder._replicates, builder._plugins) == ("b", 1, [])
    step = Record()
    exp = (
        builder.datasource(ReplicateSource())
        .add_step(step)
        .replicates(3)
        .description("d")
        .treatments([Treatment("t", {})])
        .initial_ctx({"k": 1})
        .outputs([Artifact("o")])
        .build()
    )
    assert (exp.name, exp.replicates, exp.description) == ("b", 3, "d")
    assert exp.pipeline.steps == [step] and [t.name for t in exp.treatments] == ["t"]
    assert exp.initial_ctx == {"k": 1} and list(exp.outputs) == ["o"]
    with pytest.raises(ValueError, match="datasource must be provided"):
        ExperimentBuilder().build()


def test_injection_needs_a_frozen_context_and_async_steps_have_acall() -> None:
    @inject_from_ctx
    def add(data: int, ctx: FrozenContext, *, delta: int = 0) -> int:
        return data + delta

    assert add(1, FrozenContext({"delta": 4})) == 5
    with pytest.raises(TypeError, match="must be a FrozenContext"):
        add(1, {"delta": 4})  # type: ignore[arg-type]

    @pipeline_step()
    async def later(data: int, ctx: FrozenContext, delta: int = 0) -> int:
        await asyncio.sleep(0)
        return data + delta

    assert asyncio.run(later().__acall__(2, FrozenContext({"delta": 3}))) == 5
    assert asyncio.run(later(delta=1).__acall__(2, FrozenContext({"delta": 3}))) == 3


def test_experiment_input_lists_its_artifacts_and_refuses_mixed_counts() -> None:
    a, b = Artifact("a"), Artifact("b")
    a.replicates, b.replicates = 2, 3
    with pytest.raises(ValueError, match="Conflicting replicates across artifacts: a=2, b=3"):
        ExperimentInput(a=a, b=b)
    b.replicates = 2
    inputs = ExperimentInput(a=a, b=b, other=ReplicateSource())
    assert inputs.required_outputs == [a, b] and inputs.replicates == 2


# --- executors called directly, as Crystallize's tests call them --------------------------
class Bare:
    """Only what an executor reads of an experiment: its replicate count."""

    replicates = 3


def test_executors_run_plain_replicate_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    async def twice(i: int) -> int:
        await asyncio.sleep(0)
        return i * 2

    assert asyncio.run(SerialExecution().run_experiment_loop(Bare(), twice)) == [0, 2, 4]
    assert SerialExecution().run_experiment_loop(Bare(), lambda i: i + 1) == [1, 2, 3]
    assert ParallelExecution(max_workers=2).run_experiment_loop(Bare(), lambda i: i) == [0, 1, 2]
    assert asyncio.run(AsyncExecution().run_experiment_loop(Bare(), twice)) == [0, 2, 4]
    with pytest.raises(TypeError, match="AsyncExecution"):
        ParallelExecution().run_experiment_loop(Bare(), twice)
    with pytest.raises(ValueError, match="executor_type"):
        ParallelExecution(executor_type="bad").run_experiment_loop(Bare(), lambda i: i)
    # with progress on, AsyncExecution gathers through tqdm.asyncio (when installed)
    gathered: list[str] = []

    async def gather(*tasks: Any, desc: str = "") -> list[Any]:
        gathered.append(desc)
        return list(await asyncio.gather(*tasks))

    fake = types.ModuleType("tqdm.asyncio")
    fake.tqdm = types.SimpleNamespace(gather=gather)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tqdm.asyncio", fake)
    assert asyncio.run(AsyncExecution(progress=True).run_experiment_loop(Bare(), twice)) == [
        0,
        2,
        4,
    ]
    assert gathered == ["Replicates"]


class Holds(PipelineStep):
    def __init__(self) -> None:
        self.handle = open(__file__)  # noqa: SIM115 - unpicklable on purpose

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        return data

    @property
    def params(self) -> dict[str, Any]:
        return {}


def test_the_process_pool_called_directly_runs_the_experiments_replicates() -> None:
    exp = Experiment(ReplicateSource(), Pipeline([Record()]), name="direct", replicates=2)
    folded = ParallelExecution(executor_type="process", max_workers=2).run_experiment_loop(
        exp, lambda i: i
    )
    assert folded.result().metrics.baseline.metrics == {"val": [0, 1]}
    step = Holds()
    bad = Experiment(ReplicateSource(), Pipeline([step]), name="bad-exp")
    try:
        with pytest.raises(RuntimeError) as caught:
            ParallelExecution(executor_type="process").run_experiment_loop(bad, lambda i: i)
    finally:
        step.handle.close()
    message = str(caught.value)
    assert "bad-exp" in message and "Holds" in message and "resource_factory" in message


def test_max_workers_sizes_the_process_pool() -> None:
    def pids(workers: int) -> set[int]:
        exp = Experiment(
            ReplicateSource(),
            Pipeline([Record()]),
            plugins=[ParallelExecution(executor_type="process", max_workers=workers)],
            replicates=6,
        )
        cells = exp.run().provenance["cells"].values()
        return {cell["worker"]["pid"] for cell in cells}

    assert len(pids(1)) == 1
    assert 1 <= len(pids(2)) <= 2
