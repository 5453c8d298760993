"""The examples of doc pages 000 (reproducibility across executors) and 001 (customising
experiments), with ``crystallize`` imports replaced by ``crystallize_dist``."""

from __future__ import annotations

import logging
import random
from typing import Any

import fixtures
import numpy as np
import pytest
from fixtures import (
    AddRandomStep,
    CtxAddRandomStep,
    CtxRandomSource,
    RandomSource,
    RecordSeedStep,
    my_source,
    query,
    seed_everything_doc,
    step_one,
    step_two,
)

from crystallize_dist import (
    ArtifactPlugin,
    AsyncExecution,
    Experiment,
    LoggingPlugin,
    ParallelExecution,
    Pipeline,
    SeedPlugin,
    SerialExecution,
    Treatment,
    resource_factory,
)
from crystallize_dist.engine.running import executor_of
from crystallize_dist.plugins.execution import ParallelExecution as AliasParallel
from crystallize_dist.plugins.plugins import SeedPlugin as AliasSeedPlugin


# === page 000: guarantee reproducible results across executors ==================================
def _page_000(source: Any, step: Any, caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    seed_plugin = AliasSeedPlugin(seed=42, seed_fn=seed_everything_doc)
    exp_serial = Experiment(datasource=source, pipeline=Pipeline([step]), plugins=[seed_plugin])
    res_serial = exp_serial.run(replicates=5)
    exp_thread = Experiment(
        datasource=source,
        pipeline=Pipeline([step]),
        plugins=[seed_plugin, AliasParallel(executor_type="thread")],
    )
    with caplog.at_level(logging.WARNING, logger="crystallize"):
        res_thread = exp_thread.run(replicates=5)
    exp_process = Experiment(
        datasource=source,
        pipeline=Pipeline([step]),
        plugins=[seed_plugin, AliasParallel(executor_type="process", max_workers=2)],
    )
    res_process = exp_process.run(replicates=5)
    return {
        "serial": res_serial.metrics.baseline.metrics["rand"],
        "thread": res_thread.metrics.baseline.metrics["rand"],
        "process": res_process.metrics.baseline.metrics["rand"],
    }


def test_page_000_serial_equals_process_with_global_generators(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rand = _page_000(RandomSource(), AddRandomStep(), caplog)
    assert rand["serial"] == rand["process"]
    assert len(rand["serial"]) == 5 and len(set(rand["serial"])) == 5
    assert len(rand["thread"]) == 5  # global generators under threads: no equality promised


def test_page_000_serial_thread_process_agree_with_ctx_generators(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rand = _page_000(CtxRandomSource(), CtxAddRandomStep(), caplog)
    assert rand["serial"] == rand["thread"] == rand["process"]
    assert len(set(rand["serial"])) == 5


def test_page_000_thread_run_warns(caplog: pytest.LogCaptureFixture) -> None:
    _page_000(CtxRandomSource(), CtxAddRandomStep(), caplog)
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "crystallize" and r.levelno == logging.WARNING
    ]
    assert any("executor_type='thread'" in m and "ctx.rng" in m for m in warnings), warnings


def test_page_000_seed_function_seeds_both_generators() -> None:
    seed_everything_doc(42)
    a = (random.random(), np.random.random())
    seed_everything_doc(42)
    assert (random.random(), np.random.random()) == a


# === page 001: customising experiments ===========================================================
def test_page_001_default_plugins_manual_and_builder() -> None:
    manual = Experiment(datasource=my_source(), pipeline=Pipeline([step_one(), step_two()]))
    built = Experiment.builder().datasource(my_source()).add_step(step_one()).build()
    for exp in (manual, built):
        artifact, seed, log = exp.plugins
        assert isinstance(artifact, ArtifactPlugin) and artifact.root_dir == "data"
        assert isinstance(seed, SeedPlugin) and seed.auto_seed is True
        assert isinstance(log, LoggingPlugin) and log.verbose is False


def test_page_001_supplied_plugins_replace_the_defaults(caplog: pytest.LogCaptureFixture) -> None:
    seed = SeedPlugin(seed=1234, auto_seed=True)
    parallel = ParallelExecution(max_workers=2, executor_type="process")
    logging_plugin = LoggingPlugin(verbose=True, log_level="DEBUG")
    experiment = Experiment(
        datasource=my_source(),
        pipeline=Pipeline([step_one(), step_two()]),
        plugins=[seed, parallel, logging_plugin],
        treatments=[Treatment("double", {"scale": 2})],
    )
    assert experiment.plugins[:3] == [seed, parallel, logging_plugin]
    assert [type(p) for p in experiment.plugins[3:]] == [ArtifactPlugin]
    assert executor_of(experiment) is parallel
    result = experiment.run(replicates=2)
    assert result.metrics.baseline.metrics["total"] == [6, 6]
    assert result.provenance["seeds"]["baseline"] == [1234, 1234 + 31337]
    assert logging.getLogger("crystallize").level == logging.DEBUG
    assert any("No seed_fn provided" in r.getMessage() for r in caplog.records)
    assert result.metrics.treatments["double"].metrics["total"] == [12, 12]
    # verbose logging records the context keys each step read in the provenance
    changes = result.provenance["ctx_changes"]
    assert changes["double"][1][0]["ctx_changes"]["reads"] == {"scale": 2}
    assert changes["baseline"][1][0]["ctx_changes"]["reads"] == {}


def test_page_001_seed_knobs() -> None:
    def seed_all(seed: int) -> None:
        import random

        random.seed(seed)
        np.random.seed(seed % (2**32 - 1))
        calls.append(seed)

    calls: list[int] = []
    seeded = SeedPlugin(seed=123, seed_fn=seed_all)
    exp = Experiment(
        datasource=my_source(), pipeline=Pipeline([RecordSeedStep()]), plugins=[seeded]
    )
    result = exp.run(replicates=3)
    expected = [(123 + r * 31337) % 2**32 for r in range(3)]
    assert calls == expected
    assert result.metrics.baseline.metrics["seed"] == expected  # ctx["seed_used"]
    assert result.provenance["seeds"]["baseline"] == expected
    assert result.metrics.baseline.metrics["draw"] == [random.Random(s).random() for s in expected]

    fixed = Experiment(
        datasource=my_source(),
        pipeline=Pipeline([RecordSeedStep()]),
        plugins=[SeedPlugin(seed=123, auto_seed=False)],
    ).run(replicates=3)
    assert fixed.metrics.baseline.metrics["seed"] == [123, 123, 123]


def test_page_001_default_seeding_without_seed_fn() -> None:
    exp = Experiment(
        datasource=my_source(),
        pipeline=Pipeline([RecordSeedStep()]),
        plugins=[SeedPlugin(seed=1234, auto_seed=True)],
    )
    result = exp.run(replicates=2)
    seeds = [1234, 1234 + 31337]
    assert result.metrics.baseline.metrics["draw"] == [random.Random(s).random() for s in seeds]


@pytest.mark.parametrize(
    ("executor", "key"),
    [
        (None, "doc001-serial"),
        (ParallelExecution(max_workers=2, executor_type="thread"), "doc001-thread"),
        (ParallelExecution(max_workers=2, executor_type="process"), "doc001-process"),
    ],
    ids=["serial", "thread", "process"],
)
def test_page_001_resource_factory(executor: Any, key: str) -> None:
    fixtures.CONNECTS.clear()
    plugins: list[Any] = [SeedPlugin(seed=0)]
    if executor is not None:
        plugins.append(executor)
    experiment = Experiment(
        datasource=my_source(),
        pipeline=Pipeline([step_one(), step_two(), query()]),
        plugins=plugins,
        initial_ctx={"db": resource_factory(fixtures.connect, key=key)},
    )
    result = experiment.run(replicates=4)
    metrics = result.metrics.baseline.metrics
    assert metrics["total"] == [6, 6, 6, 6]
    if executor is None:
        # one connection for the whole run, reused by every replicate
        assert metrics["connects"] == [1, 1, 1, 1]
        assert metrics["rows_seen"] == [1, 2, 3, 4]
    elif executor.executor_type == "thread":
        assert 1 <= len(fixtures.CONNECTS) <= 2  # once per worker thread
        assert len(set(fixtures.CONNECTS)) == len(fixtures.CONNECTS)
        assert sum(1 for n in metrics["rows_seen"] if n == 1) == len(fixtures.CONNECTS)
    else:
        assert fixtures.CONNECTS == []  # created in the workers, not here
        assert set(metrics["connects"]) == {1}  # once per worker process
        assert 1 <= sum(1 for n in metrics["rows_seen"] if n == 1) <= 2


def test_page_001_execution_strategies_construct() -> None:
    assert ParallelExecution(max_workers=8, executor_type="process").max_workers == 8
    assert isinstance(AsyncExecution(), AsyncExecution)
    assert SerialExecution().progress is False


def test_page_001_apply_with_data_and_seed() -> None:
    seeds: list[int] = []
    best = Treatment("double", {"scale": 2})
    experiment = Experiment(
        datasource=my_source(),
        pipeline=Pipeline([step_one(), step_two()]),
        plugins=[SeedPlugin(seed=5, seed_fn=seeds.append)],
        treatments=[best],
    )
    result = experiment.run(treatments=[best], replicates=4)
    assert result.metrics.treatments["double"].metrics["total"] == [12] * 4
    seeds.clear()
    single_output = experiment.apply(
        treatment=best,
        data={"numbers": [10, 20, 30]},
        seed=999,
    )
    assert single_output == 120
    assert seeds == [999]
    assert experiment.apply(treatment=best) == 12  # no data: the datasource runs


def test_page_001_validate(capsys: pytest.CaptureFixture[str]) -> None:
    good = Experiment(datasource=my_source(), pipeline=Pipeline([step_one()]))
    good.validate()
    bad = Experiment(datasource=None, pipeline=Pipeline([step_one()]))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Experiment requires datasource and pipeline"):
        bad.validate()
    with pytest.raises(ValueError):
        bad.run()
    assert "Experiment validation failed:" in capsys.readouterr().out
