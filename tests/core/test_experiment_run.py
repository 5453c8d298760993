"""Experiment.run: metric shapes, hook order, plugins, treatments, replicates, id
(contract §10, §19.5, 8, 9, 12, 13, 20)."""

from __future__ import annotations

import hashlib
import logging
import pickle
from typing import Any

import pytest
from fixtures import (
    AddStep,
    ConstantSource,
    ReplicatesAttrSource,
    ReplicateSource,
    SlowFirstStep,
    TwoMetricsStep,
)

from crystallize_dist import (
    ArtifactPlugin,
    AsyncExecution,
    BasePlugin,
    DataSource,
    Experiment,
    FrozenContext,
    LoggingPlugin,
    ParallelExecution,
    Pipeline,
    PipelineStep,
    SeedPlugin,
    SerialExecution,
    Treatment,
    default_seed_function,
)
from crystallize_dist.engine.replicates import ReplicateResult
from crystallize_dist.engine.running import executor_of
from crystallize_dist.errors import ValidationError


def _experiment(
    steps: list[PipelineStep] | None = None, plugins: list[BasePlugin] | None = None, **kw: Any
) -> Experiment:
    return Experiment(
        datasource=kw.pop("datasource", ConstantSource(0)),
        pipeline=Pipeline(steps or [AddStep()]),
        plugins=[SeedPlugin(seed=1), *(plugins or [])],
        **kw,
    )


# --- 5. metric shapes ----------------------------------------------------------------------------
def test_metrics_are_flat_in_replicate_order_and_concatenate() -> None:
    result = _experiment([TwoMetricsStep()], datasource=ReplicateSource()).run(replicates=3)
    assert result.metrics.baseline.metrics["x"] == [0, 1, 10, 11, 20, 21]


def test_tuple_returns_become_metrics_and_data_flows_on() -> None:
    seen: list[Any] = []

    class Last(PipelineStep):
        def __call__(self, data: Any, ctx: FrozenContext) -> Any:
            seen.append(data)
            return data

        @property
        def params(self) -> dict[str, Any]:
            return {}

    result = _experiment([AddStep(2), AddStep(3), Last()], datasource=ConstantSource(10)).run(
        replicates=2
    )
    assert seen == [15, 15]
    assert result.metrics.baseline.metrics == {"value": [12, 15, 12, 15]}


def test_a_tuple_without_a_mapping_is_plain_data() -> None:
    class Pair(PipelineStep):
        def __call__(self, data: Any, ctx: FrozenContext) -> Any:
            return (1, 2)

        @property
        def params(self) -> dict[str, Any]:
            return {}

    class Check(PipelineStep):
        def __call__(self, data: Any, ctx: FrozenContext) -> Any:
            return data, {"len": len(data)}

        @property
        def params(self) -> dict[str, Any]:
            return {}

    result = _experiment([Pair(), Check()]).run()
    assert result.metrics.baseline.metrics == {"len": [2]}


# --- 8. hook order --------------------------------------------------------------------------------
class Recorder(BasePlugin):
    def __init__(self, log: list[Any], tag: str = "") -> None:
        self.log = log
        self.tag = tag

    def init_hook(self, experiment: Experiment) -> None:
        self.log.append((self.tag, "init"))

    def before_run(self, experiment: Experiment) -> None:
        self.log.append((self.tag, "before_run"))

    def before_replicate(self, experiment: Experiment, ctx: FrozenContext) -> None:
        self.log.append((self.tag, "before_rep", ctx["replicate"], ctx["condition"]))

    def before_step(self, experiment: Experiment, step: PipelineStep) -> None:
        self.log.append((self.tag, "before_step", type(step).__name__))

    def after_step(self, experiment: Experiment, step: PipelineStep, data: Any, ctx: Any) -> None:
        self.log.append((self.tag, "after_step", type(step).__name__, data))

    def after_run(self, experiment: Experiment, result: Any) -> None:
        self.log.append((self.tag, "after_run"))


class LoggedSource(DataSource):
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def fetch(self, ctx: FrozenContext) -> int:
        self.log.append(("", "fetch", ctx["replicate"], ctx["condition"], ctx.get("seed_used")))
        return 0


class LoggedStep(PipelineStep):
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        return data + 1

    @property
    def params(self) -> dict[str, Any]:
        return {}

    def setup(self, ctx: FrozenContext) -> None:
        self.log.append(("", "setup", dict(ctx.as_dict())))

    def teardown(self, ctx: FrozenContext) -> None:
        self.log.append(("", "teardown"))


def test_hook_order_of_run() -> None:
    log: list[Any] = []
    exp = Experiment(
        datasource=LoggedSource(log),
        pipeline=Pipeline([LoggedStep(log)]),
        plugins=[SeedPlugin(seed=1), Recorder(log)],
        treatments=[Treatment("t1", {}), Treatment("t2", {})],
        initial_ctx={"k": 1},
    )
    exp.run(replicates=2)

    def cell(r: int, c: str) -> list[Any]:
        seed = 1 + r * 31337
        return [
            ("", "before_rep", r, c),
            ("", "fetch", r, c, seed),
            ("", "before_step", "LoggedStep"),
            ("", "after_step", "LoggedStep", 1),
        ]

    expected: list[Any] = [("", "init"), ("", "before_run"), ("", "setup", {"k": 1})]
    for r in range(2):
        for c in ("baseline", "t1", "t2"):
            expected += cell(r, c)
    expected += [("", "teardown"), ("", "after_run")]
    assert log == expected


class _AddedInBeforeRun(BasePlugin):
    """Added to the plugin list by _LateHooks.before_run; marks every cell."""

    def before_replicate(self, experiment: Experiment, ctx: FrozenContext) -> None:
        ctx.add("added", True)

    def after_step(self, experiment: Any, step: Any, data: Any, ctx: FrozenContext) -> None:
        ctx.metrics.add("added", ctx.get("added"))


class _LateHooks(BasePlugin):
    """Sets its after_step hook up on the instance, in before_run."""

    def before_run(self, experiment: Experiment) -> None:
        self.after_step = self.note  # type: ignore[method-assign]
        experiment.plugins.append(_AddedInBeforeRun())

    def note(self, experiment: Any, step: Any, data: Any, ctx: FrozenContext) -> None:
        ctx.metrics.add("hooked", 1)


@pytest.mark.parametrize("executor", ["serial", "process"])
def test_hooks_a_plugin_sets_up_in_before_run_are_called(executor: str) -> None:
    """Only plugins with hooks are called per cell, and which ones is decided after
    before_run: a hook set on the instance there, or a plugin added there, still runs."""
    plugins: list[BasePlugin] = [_LateHooks()]
    if executor == "process":
        plugins.append(ParallelExecution(executor_type="process", max_workers=2))
    exp = Experiment(
        datasource=ConstantSource(1), pipeline=Pipeline([AddStep(1)]), plugins=plugins
    )
    metrics = exp.run(replicates=3).metrics.baseline.metrics
    assert metrics["hooked"] == [1, 1, 1]
    assert metrics["added"] == [True, True, True]


def test_plugins_are_called_in_list_order_and_seed_plugin_position_matters() -> None:
    log: list[Any] = []
    seen: list[Any] = []

    class SeedWatcher(BasePlugin):
        def before_replicate(self, experiment: Experiment, ctx: FrozenContext) -> None:
            seen.append(ctx.get("seed_used"))

    exp = Experiment(
        datasource=ConstantSource(0),
        pipeline=Pipeline([AddStep()]),
        plugins=[Recorder(log, "a"), SeedWatcher(), SeedPlugin(seed=9), Recorder(log, "b")],
    )
    exp.run()
    assert [entry[0] for entry in log if entry[1] == "before_run"] == ["a", "b"]
    assert [entry[0] for entry in log if entry[1] == "after_run"] == ["a", "b"]
    assert seen == [None]  # a plugin before SeedPlugin sees no seed yet


def test_exception_in_before_run_propagates() -> None:
    class Bad(BasePlugin):
        def before_run(self, experiment: Experiment) -> None:
            raise RuntimeError("no run today")

    with pytest.raises(RuntimeError, match="no run today"):
        _experiment(plugins=[Bad()]).run()


def test_teardown_runs_even_when_the_run_aborts() -> None:
    log: list[Any] = []

    class BadLoop(BasePlugin):
        def run_experiment_loop(self, experiment: Experiment, replicate_fn: Any) -> Any:
            raise RuntimeError("executor died")

    exp = _experiment([LoggedStep(log)], plugins=[BadLoop(), Recorder(log)])
    with pytest.raises(RuntimeError, match="executor died"):
        exp.run()
    assert ("", "teardown") in log
    assert ("", "after_run") not in log


# --- 9. default plugins and executor selection ----------------------------------------------------
def test_default_plugins_are_appended_when_missing() -> None:
    exp = Experiment(datasource=ConstantSource(0), pipeline=Pipeline([AddStep()]))
    assert [type(p) for p in exp.plugins] == [ArtifactPlugin, SeedPlugin, LoggingPlugin]
    artifact, seed, logging_plugin = exp.plugins
    assert artifact.root_dir == "data"
    assert seed.auto_seed is True and seed.seed_fn is default_seed_function
    assert logging_plugin.verbose is False


def test_user_plugins_keep_their_order_ahead_of_defaults() -> None:
    rec = Recorder([])
    seed = SeedPlugin(seed=3)
    plugins: list[BasePlugin] = [rec, seed]
    exp = Experiment(datasource=ConstantSource(0), pipeline=Pipeline([AddStep()]), plugins=plugins)
    assert exp.plugins is plugins  # used and mutated in place
    assert [type(p) for p in plugins] == [Recorder, SeedPlugin, ArtifactPlugin, LoggingPlugin]
    assert exp.get_plugin(SeedPlugin) is seed
    assert exp.get_plugin(ParallelExecution) is None


def test_last_executor_plugin_wins_and_serial_is_the_fallback() -> None:
    used: list[str] = []

    class Tagged(SerialExecution):
        def __init__(self, tag: str) -> None:
            super().__init__()
            self.tag = tag

        def run_experiment_loop(self, experiment: Experiment, replicate_fn: Any) -> Any:
            used.append(self.tag)
            return super().run_experiment_loop(experiment, replicate_fn)

    result = _experiment(plugins=[Tagged("first"), Tagged("last")]).run(replicates=2)
    assert used == ["last"]
    assert result.metrics.baseline.metrics == {"value": [1, 1]}
    assert type(executor_of(_experiment())) is SerialExecution


def test_custom_executor_gets_a_sync_replicate_fn_and_the_replicate_count() -> None:
    got: list[Any] = []

    class Reversed(BasePlugin):
        """Runs replicates last-first and returns them in completion order."""

        def run_experiment_loop(self, experiment: Experiment, replicate_fn: Any) -> Any:
            got.append(experiment.replicates)
            out = [replicate_fn(r) for r in reversed(range(experiment.replicates))]
            got.extend(type(o) for o in out)
            return out

    result = _experiment([TwoMetricsStep()], plugins=[Reversed()]).run(replicates=3)
    assert got == [3, ReplicateResult, ReplicateResult, ReplicateResult]
    assert result.metrics.baseline.metrics["x"] == [0, 1, 10, 11, 20, 21]
    assert result.provenance["seeds"]["baseline"] == [1, 1 + 31337, 1 + 2 * 31337]


# --- 12. a treatment named baseline (a deliberate difference: Crystallize applies it to the
# baseline condition; here the name is refused, see docs/compatibility.md) ----------------------
def test_a_treatment_named_baseline_is_refused_and_the_baseline_stays_itself() -> None:
    with pytest.raises(ValidationError, match="may not be named 'baseline'"):
        Treatment("baseline", {"delta": 7})
    exp = _experiment(treatments=[Treatment("t", {"delta": 7})])
    result = exp.run(replicates=2)
    assert result.metrics.baseline.metrics == {"value": [1, 1]}
    assert result.metrics.treatments["t"].metrics == {"value": [7, 7]}


# --- 13. replicates, validation ------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, -3])
def test_non_positive_replicates_are_clamped_to_one(n: int) -> None:
    assert _experiment(replicates=n).run().metrics.baseline.metrics == {"value": [1]}
    assert _experiment().run(replicates=n).provenance["replicates"] == 1


def test_non_int_replicates_raise_type_error() -> None:
    with pytest.raises(TypeError, match="replicates must be an integer"):
        _experiment(replicates="three")
    with pytest.raises(TypeError):
        _experiment().run(replicates="three")  # type: ignore[arg-type]


def test_empty_pipeline_raises_value_error() -> None:
    with pytest.raises(ValueError, match=r"Pipeline must contain at least one step\."):
        Pipeline([])


def test_replicates_argument_beats_datasource_beats_experiment() -> None:
    exp = _experiment(datasource=ReplicatesAttrSource(0), replicates=2)
    assert exp.run().provenance["replicates"] == 4
    assert exp.run(replicates=1).provenance["replicates"] == 1
    assert _experiment(replicates=2).run().provenance["replicates"] == 2
    assert exp.replicates == 2  # restored after the run


def test_explicit_empty_treatments_run_only_the_baseline() -> None:
    exp = _experiment(treatments=[Treatment("t", {})])
    assert list(exp.run(treatments=[]).metrics.treatments) == []
    assert list(exp.run().metrics.treatments) == ["t"]


def test_run_inside_an_event_loop_raises() -> None:
    import asyncio

    exp = _experiment()

    async def inside() -> None:
        with pytest.raises(RuntimeError, match="arun"):
            exp.run()
        result = await exp.arun(replicates=2)
        assert result.metrics.baseline.metrics == {"value": [1, 1]}

    asyncio.run(inside())


# --- 20. id and ordering ------------------------------------------------------------------------
def test_id_is_the_hash_of_the_pipeline_signature_after_run() -> None:
    exp = _experiment([AddStep(4)])
    assert exp.id is None
    exp.run()
    assert exp.pipeline.signature() == "AddStep{'delta': 4}"
    assert exp.id == hashlib.sha256(pickle.dumps(exp.pipeline.signature())).hexdigest()


@pytest.mark.parametrize(
    "executor",
    [ParallelExecution(max_workers=4, executor_type="thread"), AsyncExecution()],
    ids=["thread", "async"],
)
def test_results_are_ordered_by_replicate_whatever_finishes_first(executor: BasePlugin) -> None:
    reps = 4
    exp = _experiment([SlowFirstStep(reps)], plugins=[executor], treatments=[Treatment("t", {})])
    result = exp.run(replicates=reps)
    assert result.metrics.baseline.metrics["rep"] == [0, 1, 2, 3]
    assert result.metrics.treatments["t"].metrics["rep"] == [0, 1, 2, 3]
    assert result.provenance["seeds"]["baseline"] == [1 + r * 31337 for r in range(reps)]


def test_cell_summaries_do_not_share_their_worker_stamp() -> None:
    exp = Experiment(
        datasource=ConstantSource(1),
        pipeline=Pipeline([AddStep(1)]),
        treatments=[Treatment("t", {"delta": 2})],
    )
    cells = exp.run(replicates=2).provenance["cells"]
    assert set(cells) == {"baseline:0", "t:0", "baseline:1", "t:1"}
    cells["baseline:0"]["worker"]["note"] = "edited"
    assert all("note" not in c["worker"] for k, c in cells.items() if k != "baseline:0")
    assert all(set(c["worker"]) == {"host", "pid"} for k, c in cells.items() if k != "baseline:0")


def test_logging_plugin_logs_the_seed_the_run_used(caplog: pytest.LogCaptureFixture) -> None:
    exp = Experiment(
        datasource=ConstantSource(1),
        pipeline=Pipeline([AddStep(1)]),
        plugins=[SeedPlugin(seed=1), LoggingPlugin(log_level="INFO")],
    )
    with caplog.at_level(logging.INFO, logger="crystallize"):
        exp.run(replicates=2, seed=7)
        exp.run(replicates=2)
    starts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Experiment:")]
    assert starts == [
        "Experiment: 2 replicates, 0 treatments, 0 hypotheses (seed=7)",
        "Experiment: 2 replicates, 0 treatments, 0 hypotheses (seed=1)",
    ]
