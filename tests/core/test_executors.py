"""Executors: parity, thread warning and reproducibility, process pickling, bad input
(contract §11.5, §19.6, 7, 14; DESIGN.md §6: threads are reproducible with ctx.rng)."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import fixtures
import pytest
from fixtures import (
    AddRandomStep,
    AddStep,
    ConstantSource,
    CtxAddRandomStep,
    CtxRandomSource,
    LambdaStep,
    LockStep,
    RandomSource,
    RecordSeedStep,
    query,
    seed_everything_doc,
)

from crystallize_dist import (
    AsyncExecution,
    BasePlugin,
    Experiment,
    FrozenContext,
    Hypothesis,
    ParallelExecution,
    Pipeline,
    PipelineStep,
    SeedPlugin,
    SerialExecution,
    Treatment,
    resource_factory,
)
from crystallize_dist.errors import UnpicklableExperimentError
from crystallize_dist.plugins.execution import VALID_EXECUTOR_TYPES

THREAD = "thread"
PROCESS = "process"


def _stochastic(executor: BasePlugin | None, *, use_ctx: bool = False, **kw: Any) -> Experiment:
    plugins: list[BasePlugin] = [SeedPlugin(seed=123, seed_fn=seed_everything_doc)]
    if executor is not None:
        plugins.append(executor)
    return Experiment(
        datasource=CtxRandomSource() if use_ctx else RandomSource(),
        # RecordSeedStep also draws from the global generator: only in the global variant
        pipeline=Pipeline([CtxAddRandomStep()] if use_ctx else [AddRandomStep(), RecordSeedStep()]),
        plugins=plugins,
        treatments=[Treatment("t", {"x": 1})],
        **kw,
    )


# --- 6. serial == process ---------------------------------------------------------------------
def test_serial_and_process_give_identical_metrics_and_seeds() -> None:
    serial = _stochastic(None).run(replicates=3)
    process = _stochastic(ParallelExecution(max_workers=2, executor_type=PROCESS)).run(replicates=3)
    assert serial.metrics == process.metrics
    assert serial.provenance["seeds"] == process.provenance["seeds"]
    assert serial.provenance["seeds"]["baseline"] == [(123 + r * 31337) % 2**32 for r in range(3)]
    assert serial.digest == process.digest
    assert len(set(serial.metrics.baseline.metrics["rand"])) == 3


def test_process_cells_run_in_other_processes() -> None:
    import os

    result = _stochastic(ParallelExecution(max_workers=2, executor_type=PROCESS)).run(replicates=2)
    pids = {cell["worker"]["pid"] for cell in result.provenance["cells"].values()}
    assert os.getpid() not in pids


# --- 7. thread warning, thread reproducibility with per-cell generators -----------------------
def test_thread_execution_warns_on_the_crystallize_logger(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="crystallize"):
        _stochastic(ParallelExecution(max_workers=2, executor_type=THREAD)).run(replicates=2)
    messages = [
        r.getMessage()
        for r in caplog.records
        if r.name == "crystallize" and r.levelno == logging.WARNING
    ]
    assert any("executor_type='thread'" in m and "ctx.rng" in m for m in messages), messages


def test_process_and_serial_do_not_warn_about_threads(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="crystallize"):
        _stochastic(None).run(replicates=2)
    assert not any("executor_type='thread'" in r.getMessage() for r in caplog.records)


def test_thread_is_reproducible_with_ctx_generators() -> None:
    serial = _stochastic(None, use_ctx=True).run(replicates=4)
    for _ in range(3):
        thread = _stochastic(
            ParallelExecution(max_workers=4, executor_type=THREAD), use_ctx=True
        ).run(replicates=4)
        assert thread.metrics.baseline.metrics["rand"] == serial.metrics.baseline.metrics["rand"]
        assert thread.digest == serial.digest
    process = _stochastic(
        ParallelExecution(max_workers=2, executor_type=PROCESS), use_ctx=True
    ).run(replicates=4)
    assert process.digest == serial.digest
    asynced = _stochastic(AsyncExecution(), use_ctx=True).run(replicates=4)
    assert asynced.digest == serial.digest


def test_ctx_generators_are_paired_across_conditions_and_differ_across_replicates() -> None:
    result = _stochastic(None, use_ctx=True).run(replicates=3)
    base = result.metrics.baseline.metrics["rand"]
    assert result.metrics.treatments["t"].metrics["rand"] == base  # same seed, same draws
    assert len(set(base)) == 3


# --- 14. bad executor input -----------------------------------------------------------------
def test_bad_executor_type_raises_value_error_at_run_time() -> None:
    executor = ParallelExecution(executor_type="fibers")  # constructing is fine
    assert {"thread", "process"} == VALID_EXECUTOR_TYPES
    exp = _stochastic(executor)
    with pytest.raises(ValueError, match="fibers"):
        exp.run()


def test_async_replicate_fn_raises_type_error_naming_async_execution() -> None:
    class Dummy:
        replicates = 2

    async def replicate_fn(rep: int) -> int:
        return rep

    with pytest.raises(TypeError, match="AsyncExecution"):
        ParallelExecution().run_experiment_loop(Dummy(), replicate_fn)  # type: ignore[arg-type]


def test_thread_executor_calls_a_plain_replicate_fn_in_order() -> None:
    class Dummy:
        replicates = 3

        def get_plugin(self, cls: type) -> Any:
            return None

    out = ParallelExecution(executor_type=THREAD).run_experiment_loop(
        Dummy(),  # type: ignore[arg-type]
        lambda i: i * 2,
    )
    assert out == [0, 2, 4]
    assert SerialExecution().run_experiment_loop(Dummy(), lambda i: i) == [0, 1, 2]  # type: ignore[arg-type]


@pytest.mark.parametrize("step_cls", [LockStep, LambdaStep], ids=["lock", "lambda"])
def test_unpicklable_step_raises_a_clear_runtime_error(step_cls: type[PipelineStep]) -> None:
    exp = Experiment(
        datasource=ConstantSource(0),
        pipeline=Pipeline([AddStep(), step_cls()]),
        plugins=[SeedPlugin(seed=0), ParallelExecution(max_workers=2, executor_type=PROCESS)],
        name="bad-exp",
    )
    with pytest.raises(RuntimeError) as info:
        exp.run(replicates=2)
    err = info.value
    assert isinstance(err, UnpicklableExperimentError)
    message = str(err)
    assert "bad-exp" in message
    assert step_cls.__name__ in message
    assert "resource_factory" in message
    assert "\n" not in message


def test_unnamed_unpicklable_experiment_says_unnamed() -> None:
    exp = Experiment(
        datasource=ConstantSource(0),
        pipeline=Pipeline([LockStep()]),
        plugins=[SeedPlugin(seed=0), ParallelExecution(max_workers=2, executor_type=PROCESS)],
    )
    with pytest.raises(RuntimeError, match="<unnamed>"):
        exp.run()


def test_resource_factory_in_initial_ctx_crosses_to_processes() -> None:
    exp = Experiment(
        datasource=ConstantSource(0),
        pipeline=Pipeline([query()]),
        plugins=[SeedPlugin(seed=0), ParallelExecution(max_workers=2, executor_type=PROCESS)],
        initial_ctx={"db": resource_factory(fixtures.connect, key="executors-process")},
    )
    metrics = exp.run(replicates=3).metrics.baseline.metrics
    assert set(metrics["connects"]) == {1}  # one connection per worker process


def test_lambda_verifier_does_not_block_process_runs() -> None:
    exp = Experiment(
        datasource=ConstantSource(0),
        pipeline=Pipeline([AddStep()]),
        plugins=[SeedPlugin(seed=0), ParallelExecution(max_workers=2, executor_type=PROCESS)],
        treatments=[Treatment("t", {"delta": 3})],
        hypotheses=[Hypothesis(verifier=lambda b, t: {"p_value": 0.01}, metrics="value")],
    )
    result = exp.run(replicates=2)
    assert result.metrics.treatments["t"].metrics == {"value": [3, 3]}
    assert result.metrics.hypotheses[0].results == {"t": {"p_value": 0.01}}
    assert [h.name for h in exp.hypotheses] == ["hypothesis"]  # the driver keeps them


# --- async execution ------------------------------------------------------------------------
class AsyncAdd(PipelineStep):
    async def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        await asyncio.sleep(0.01 * (3 - ctx["replicate"]))
        return data + 1, {"rep": ctx["replicate"]}

    @property
    def params(self) -> dict[str, Any]:
        return {}


@pytest.mark.parametrize(
    "executor",
    [
        None,
        AsyncExecution(),
        ParallelExecution(max_workers=2, executor_type=THREAD),
        ParallelExecution(max_workers=2, executor_type=PROCESS),
    ],
    ids=["serial", "async", "thread", "process"],
)
def test_async_steps_run_under_every_executor(executor: BasePlugin | None) -> None:
    plugins: list[BasePlugin] = [SeedPlugin(seed=0)]
    if executor is not None:
        plugins.append(executor)
    exp = Experiment(datasource=ConstantSource(0), pipeline=Pipeline([AsyncAdd()]), plugins=plugins)
    result = exp.run(replicates=3)
    assert result.metrics.baseline.metrics == {"rep": [0, 1, 2]}


def test_arun_with_async_execution_uses_the_running_loop() -> None:
    exp = Experiment(
        datasource=ConstantSource(0),
        pipeline=Pipeline([AsyncAdd()]),
        plugins=[SeedPlugin(seed=0), AsyncExecution()],
    )
    result = asyncio.run(exp.arun(replicates=3))
    assert result.metrics.baseline.metrics == {"rep": [0, 1, 2]}


def test_progress_bars_do_not_change_results() -> None:
    plain = _stochastic(None).run(replicates=2)
    with_bar = _stochastic(SerialExecution(progress=True)).run(replicates=2)
    assert plain.digest == with_bar.digest


@pytest.mark.parametrize(
    "executor",
    [
        SerialExecution(progress=True),
        ParallelExecution(executor_type=THREAD, progress=True),
        ParallelExecution(executor_type="process", max_workers=2, progress=True),
    ],
    ids=["serial", "thread", "process"],
)
def test_progress_uses_a_replicates_bar(
    executor: BasePlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    tqdm = types.ModuleType("tqdm")  # tqdm is optional: a stand-in shows the bar it would get
    monkeypatch.setitem(sys.modules, "tqdm", tqdm)
    bars: list[dict[str, Any]] = []

    def fake_tqdm(items: Any, **kwargs: Any) -> Any:  # wraps what it counts, as tqdm does
        bar = {**kwargs, "taken": 0}
        bars.append(bar)
        for item in items:
            bar["taken"] += 1
            yield item

    tqdm.tqdm = fake_tqdm  # type: ignore[attr-defined]
    ran = _stochastic(executor, use_ctx=True).run(replicates=3)
    assert ran.digest == _stochastic(None, use_ctx=True).run(replicates=3).digest
    assert [(b["desc"], b["total"], b["taken"]) for b in bars] == [("Replicates", 3, 3)]
