"""Experiment.apply: single-shot inference through the cell path (contract §10.7, §19.18;
DESIGN.md §6: metric tuples are unpacked and async steps awaited)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fixtures import AddStep, ConstantSource

from crystallize_dist import (
    BasePlugin,
    DataSource,
    Experiment,
    FrozenContext,
    Pipeline,
    PipelineStep,
    SeedPlugin,
    Treatment,
)


class Recorder(BasePlugin):
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def before_run(self, experiment: Experiment) -> None:
        self.log.append("before_run")

    def before_replicate(self, experiment: Experiment, ctx: FrozenContext) -> None:
        self.log.append(("before_replicate", ctx["condition"], ctx.get("seed_used")))

    def before_step(self, experiment: Experiment, step: PipelineStep) -> None:
        self.log.append(("before_step", type(step).__name__))

    def after_step(self, experiment: Experiment, step: PipelineStep, data: Any, ctx: Any) -> None:
        self.log.append(("after_step", type(step).__name__, data))

    def after_run(self, experiment: Experiment, result: Any) -> None:
        self.log.append("after_run")


class SourceLog(DataSource):
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def fetch(self, ctx: FrozenContext) -> int:
        self.log.append("fetch")
        return 100


class Boom(PipelineStep):
    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        raise ZeroDivisionError("nope")

    @property
    def params(self) -> dict[str, Any]:
        return {}


class AsyncDouble(PipelineStep):
    async def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        await asyncio.sleep(0)
        return data * 2, {"double": data * 2}

    @property
    def params(self) -> dict[str, Any]:
        return {}


def _experiment(log: list[Any], steps: list[PipelineStep], **kw: Any) -> Experiment:
    seeds: list[int] = kw.pop("seeds", [])
    return Experiment(
        datasource=SourceLog(log),
        pipeline=Pipeline(steps),
        plugins=[SeedPlugin(seed=50, seed_fn=seeds.append), Recorder(log)],
        **kw,
    )


def test_apply_returns_final_data_and_runs_hooks_in_order() -> None:
    log: list[Any] = []
    exp = _experiment(log, [AddStep(2), AddStep(3)])
    assert exp.apply() == 105
    assert log == [
        "before_run",
        ("before_replicate", "baseline", 50),
        "fetch",
        ("before_step", "AddStep"),
        ("after_step", "AddStep", 102),  # the (data, metrics) tuple was unpacked
        ("before_step", "AddStep"),
        ("after_step", "AddStep", 105),
        "after_run",
    ]


def test_apply_with_seed_calls_seed_fn_once_with_the_raw_seed() -> None:
    log: list[Any] = []
    seeds: list[int] = []
    exp = _experiment(log, [AddStep()], seeds=seeds)
    exp.apply(seed=999)
    assert seeds == [999]
    assert ("before_replicate", "baseline", 999) in log
    seeds.clear()
    exp.apply()  # without a seed: replicate 0 of the master seed
    assert seeds == [50]


def test_apply_with_data_skips_the_datasource() -> None:
    log: list[Any] = []
    exp = _experiment(log, [AddStep()])
    assert exp.apply(data=1) == 2
    assert "fetch" not in log


def test_apply_with_a_treatment_object_or_name() -> None:
    log: list[Any] = []
    big = Treatment("big", {"delta": 10})
    exp = _experiment(log, [AddStep()], treatments=[big])
    assert exp.apply(big, data=0) == 10
    assert ("before_replicate", "big", 50) in log
    assert exp.apply("big", data=0) == 10
    assert exp.apply(Treatment("other", {"delta": 3}), data=0) == 3
    assert exp.apply(data=0) == 1
    with pytest.raises(ValueError, match="unknown treatment"):
        exp.apply("missing", data=0)


def test_apply_awaits_async_steps_and_unpacks_metrics() -> None:
    exp = _experiment([], [AsyncDouble(), AsyncDouble()])
    assert exp.apply(data=3) == 12


def test_apply_propagates_the_step_exception_unwrapped() -> None:
    log: list[Any] = []
    exp = _experiment(log, [Boom()])
    with pytest.raises(ZeroDivisionError, match="nope"):
        exp.apply(data=1)
    assert "after_run" not in log


def test_apply_sets_the_experiment_id() -> None:
    exp = _experiment([], [AddStep()])
    assert exp.id is None
    exp.apply(data=0)
    assert exp.id is not None and len(exp.id) == 64


def test_apply_sees_initial_ctx() -> None:
    exp = Experiment(
        datasource=ConstantSource(0),
        pipeline=Pipeline([AddStep()]),
        plugins=[SeedPlugin(seed=0)],
        initial_ctx={"delta": 4},
    )
    assert exp.apply() == 4
