"""Pipeline: step_name, provenance records, the step cache (contract §5-6)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from fixtures import AddStep, ConstantSource

from crystallize_dist import (
    AsyncExecution,
    Experiment,
    FrozenContext,
    Pipeline,
    PipelineStep,
    SeedPlugin,
    Treatment,
    pipeline_step,
)


class StepName(PipelineStep):
    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        return [*data, ctx["step_name"]]

    @property
    def params(self) -> dict[str, Any]:
        return {}


class OtherName(StepName):
    pass


class CachedRandom(PipelineStep):
    cacheable = True

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        return {"r": random.random()}

    @property
    def params(self) -> dict[str, Any]:
        return {}


@pipeline_step(cacheable=True)
def cached_mul(data: int, ctx: FrozenContext, k: int = 1) -> Any:
    return data * k, {"v": data * k}


def test_step_name_is_reset_before_every_step() -> None:
    ctx = FrozenContext({})
    assert Pipeline([StepName(), OtherName(), StepName()]).run([], ctx) == [
        "StepName",
        "OtherName",
        "StepName",
    ]
    assert ctx["step_name"] == "StepName"


def test_run_returns_provenance_records() -> None:
    ctx = FrozenContext({})
    pipe = Pipeline([AddStep(1), AddStep(2)])
    out, records = pipe.run(0, ctx, return_provenance=True)
    assert out == 3
    assert [r["step"] for r in records] == ["AddStep", "AddStep"]
    assert records[0]["params"] == {"delta": 1}
    assert records[0]["output_hash"] == records[1]["input_hash"]
    assert records[1]["ctx_changes"]["metrics"] == {"value": {"before": (1,), "after": (1, 3)}}
    assert records[0]["cache_hit"] is False
    assert pipe.get_provenance() == records
    assert pipe.signature() == "AddStep{'delta': 1}|AddStep{'delta': 2}"


def test_arun_awaits_async_steps() -> None:
    class Later(PipelineStep):
        async def __call__(self, data: Any, ctx: FrozenContext) -> Any:
            await asyncio.sleep(0)
            return data * 3

        @property
        def params(self) -> dict[str, Any]:
            return {}

    assert asyncio.run(Pipeline([Later(), AddStep()]).arun(2, FrozenContext({}))) == 7


def test_cache_ignores_the_context_and_replays_final_mapping_metrics() -> None:
    exp = Experiment(
        datasource=ConstantSource(0),
        pipeline=Pipeline([CachedRandom()]),
        plugins=[SeedPlugin(seed=1)],
        treatments=[Treatment("t", {"x": 1})],
    )
    first = exp.run(replicates=3)
    values = first.metrics.baseline.metrics["r"]
    # the first cell missed (no metrics: a plain mapping is data), the rest hit and replayed
    assert len(values) == 2 and len(set(values)) == 1
    second = exp.run(replicates=3)
    assert second.metrics.baseline.metrics["r"] == [values[0]] * 3
    assert second.metrics.treatments["t"].metrics["r"] == [values[0]] * 3
    hits = [rec[0]["cache_hit"] for rec in second.provenance["ctx_changes"]["baseline"].values()]
    assert hits == [True, True, True]


def test_changing_step_params_between_runs_misses_the_cache() -> None:
    exp = Experiment(
        datasource=ConstantSource(3),
        pipeline=Pipeline([cached_mul(k=2)]),
        plugins=[SeedPlugin(seed=1)],
    )
    assert exp.run().metrics.baseline.metrics == {"v": [6]}
    exp.pipeline = Pipeline([cached_mul(k=5)])
    assert exp.run().metrics.baseline.metrics == {"v": [15]}
    exp.pipeline.steps[0] = cached_mul(k=7)
    assert exp.run().metrics.baseline.metrics == {"v": [21]}


def test_async_runs_use_and_replay_the_cache_as_sync_runs_do() -> None:
    """The async step loop is a twin of the sync one: the same cache hits, replayed metrics
    and provenance, here for a whole AsyncExecution run after a sync one filled the cache."""

    def build(*plugins: Any) -> Experiment:
        return Experiment(
            datasource=ConstantSource(0),
            pipeline=Pipeline([CachedRandom()]),
            plugins=[SeedPlugin(seed=1), *plugins],
        )

    sync_values = build().run(replicates=3).metrics.baseline.metrics["r"]
    again = asyncio.run(build(AsyncExecution()).arun(replicates=3))
    assert again.metrics.baseline.metrics["r"] == [sync_values[0]] * 3
    steps = again.provenance["ctx_changes"]["baseline"]
    assert [rec[0]["cache_hit"] for rec in steps.values()] == [True, True, True]
    out, records = asyncio.run(
        Pipeline([CachedRandom()]).arun(0, FrozenContext({}), return_provenance=True)
    )
    assert out == {"r": sync_values[0]} and records[0]["cache_hit"] is True


def test_crystallizes_process_pool_entry_point_runs_one_replicate() -> None:
    from crystallize_dist.experiments.experiment import _run_replicate_remote

    exp = Experiment(
        datasource=ConstantSource(2),
        pipeline=Pipeline([AddStep(1)]),
        plugins=[SeedPlugin(seed=5)],
        treatments=[Treatment("t", {"delta": 10})],
    )
    out = _run_replicate_remote((exp, 3, exp.treatments, None))
    assert [r["condition"] for r in out.records] == ["baseline", "t"]
    assert out.baseline_metrics == {"value": (3,)}
    assert out.treatment_metrics == {"t": {"value": (12,)}}
    assert out.baseline_seed == (5 + 3 * 31337) % 2**32
    assert out.treatment_seeds == {"t": out.baseline_seed}
