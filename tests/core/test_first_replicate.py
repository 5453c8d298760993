"""What a user trial found the first bad-input table missed, through the Python API: a
treatment named ``baseline`` (or colliding, or not a record key), a misspelt treatment
parameter, and the seed_fn warning said only after a draw from the global generators."""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import pytest
from fixtures import AddStep, ConstantSource, CtxRandomSource

from crystallize_dist import (
    AsyncExecution,
    DataSource,
    Experiment,
    FrozenContext,
    ParallelExecution,
    Pipeline,
    PipelineStep,
    SeedPlugin,
    Treatment,
)
from crystallize_dist.errors import ValidationError


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert message and "\n" not in message, repr(message)
    return message


# --- 1. treatment names -------------------------------------------------------------------------
# " baseline " reads as baseline in a table; the full-width form is baseline in NFKC
FULL_WIDTH = "".join(chr(ord(c) + 0xFEE0) for c in "baseline")


@pytest.mark.parametrize("name", ["baseline", "Baseline", "BASELINE", " baseline ", FULL_WIDTH])
def test_a_treatment_named_baseline_is_one_line_at_construction(name: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Treatment(name, {"delta": 7})
    message = _one_line(exc)
    assert f"'{name}'" in message and "baseline" in message and "another name" in message


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("a/b", "'/'"),
        ("back\\slash", "'\\\\'"),
        ("tab\there", "'\\t'"),
        ("..", "'..'"),
        ("", "empty"),
        ("   ", "empty"),
        (3, "int 3"),
    ],
)
def test_a_treatment_name_that_cannot_be_a_record_key_is_one_line(name: Any, shown: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Treatment(name, {"delta": 1})
    assert shown in _one_line(exc)


def test_treatments_that_collide_are_one_line_at_construction_and_at_run() -> None:
    with pytest.raises(ValidationError) as exc:
        Experiment(
            ConstantSource(0),
            Pipeline([AddStep()]),
            treatments=[Treatment("fast", {"delta": 1}), Treatment("Fast", {"delta": 2})],
        )
    assert "'fast' and 'Fast' collide" in _one_line(exc)
    exp = Experiment(
        ConstantSource(0), Pipeline([AddStep()]), treatments=[Treatment("fast", {"delta": 1})]
    )
    with pytest.raises(ValidationError, match="'fast' and 'fast' collide"):
        exp.treatments = [*exp.treatments, Treatment("fast", {"delta": 3})]
    with pytest.raises(ValidationError, match="collide"):
        exp.run(treatments=[Treatment("slow", {}), Treatment("slow", {})])
    # a table shows "slow " as "slow", and a file system may hold "é" in either normal form
    for first, second in (("slow", "slow "), ("caf\u00e9", "cafe\u0301")):
        with pytest.raises(ValidationError) as exc:
            exp.run(treatments=[Treatment(first, {}), Treatment(second, {})])
        assert f"{first!r} and {second!r} collide" in _one_line(exc)
    renamed = Treatment("later", {"delta": 5})
    exp.treatments = [renamed]
    renamed.name = "baseline"  # changed after construction: the run refuses it too
    with pytest.raises(ValidationError, match="may not be named 'baseline'"):
        exp.run()


def test_the_baseline_is_never_replaced_under_any_executor() -> None:
    """The trial's case: the baseline's mean became the treatment's. A treatment with
    another name leaves the baseline as it is, serial, threads and processes alike."""
    for plugins in (
        [],
        [ParallelExecution(executor_type="thread")],
        [ParallelExecution(executor_type="process", max_workers=2)],
    ):
        exp = Experiment(
            ConstantSource(0),
            Pipeline([AddStep()]),
            plugins=[SeedPlugin(seed=1), *plugins],
            treatments=[Treatment("seven", {"delta": 7})],
            replicates=3,
        )
        result = exp.run()
        assert result.metrics.baseline.metrics == {"value": [1, 1, 1]}
        assert result.metrics.treatments["seven"].metrics == {"value": [7, 7, 7]}


# --- 2. a treatment parameter nothing read --------------------------------------------------------
class Offset(PipelineStep):
    """Adds the context's ``offset`` (0 when there is none)."""

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        value = data + ctx.get("offset", 0.0)
        return value, {"value": value}


def _typo(**kwargs: Any) -> Experiment:
    return Experiment(
        ConstantSource(1),
        Pipeline([Offset()]),
        plugins=[SeedPlugin(seed=1)],
        treatments=[Treatment("typo", {"ofset": 1.0}), Treatment("good", {"offset": 1.0})],
        replicates=3,
        **kwargs,
    )


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "crystallize" and r.levelno == logging.WARNING
    ]


@pytest.mark.parametrize("executor", ["serial", "thread", "process", "async"])
def test_a_misspelt_parameter_is_one_warning_naming_treatment_key_and_nearest_read(
    executor: str, caplog: pytest.LogCaptureFixture
) -> None:
    plugins = {
        "serial": [],
        "thread": [ParallelExecution(executor_type="thread", max_workers=2)],
        "process": [ParallelExecution(executor_type="process", max_workers=2)],
        "async": [AsyncExecution()],
    }[executor]
    exp = _typo()
    exp.plugins.extend(plugins)
    with caplog.at_level(logging.WARNING, logger="crystallize"):
        result = exp.run()
    line = (
        "treatment 'typo' sets 'ofset', but no step or datasource read it in replicate 0; "
        "did you mean 'offset'?"
    )
    assert [w for w in _warnings(caplog) if "sets" in w] == [line]  # once, after replicate 0
    assert result.provenance["warnings"] == [line]
    assert result.metrics.treatments["typo"].metrics == result.metrics.baseline.metrics
    assert not result.errors


def test_strict_params_makes_it_an_error_of_that_cell() -> None:
    result = _typo(strict_params=True).run()
    assert sorted(result.errors) == ["typo_rep_0"]
    err = result.errors["typo_rep_0"]
    assert isinstance(err, ValueError) and getattr(err, "error_type", "") == "ValidationError"
    assert "'typo' sets 'ofset'" in str(err) and "did you mean 'offset'?" in str(err)
    assert "strict_params" in str(err) and "\n" not in str(err)
    assert result.metrics.treatments["good"].metrics == {"value": [2.0, 2.0, 2.0]}


def test_parameters_read_by_a_step_or_a_datasource_are_not_flagged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Source(DataSource):
        def fetch(self, ctx: FrozenContext) -> Any:
            return ctx.get("start", 0)  # a key read by the datasource counts

    def grow(ctx: FrozenContext) -> None:  # a callable treatment: the keys it adds count
        ctx.add("start", 10)
        ctx.add("unused_knob", 3)

    exp = Experiment(
        Source(),
        Pipeline([Offset()]),
        plugins=[SeedPlugin(seed=1)],
        treatments=[Treatment("grown", grow), Treatment("fine", {"offset": 2.0})],
        replicates=2,
    )
    with caplog.at_level(logging.WARNING, logger="crystallize"):
        result = exp.run()
    assert result.provenance["warnings"] == [
        "treatment 'grown' sets 'unused_knob', but no step or datasource read it in "
        "replicate 0; the keys read were 'offset', 'start'"
    ]
    assert result.metrics.treatments["grown"].metrics == {"value": [10, 10]}


def test_a_config_folder_typo_warns_the_same(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "datasources.py").write_text(
        "from crystallize_dist import data_source\n\n@data_source\ndef one(ctx):\n    return 1.0\n"
    )
    (folder / "steps.py").write_text(
        "from crystallize_dist import pipeline_step\n\n@pipeline_step()\n"
        "def shift(data, ctx, offset: float = 0.0):\n"
        "    return data + offset, {'y': data + offset}\n"
    )
    (folder / "config.yaml").write_text(
        "datasource: one\nsteps: [shift]\nreplicates: 2\ntreatments:\n  up:\n    ofset: 1\n"
    )
    with caplog.at_level(logging.WARNING, logger="crystallize"):
        result = Experiment.from_yaml(folder).run()
    assert result.provenance["warnings"] == [
        "treatment 'up' sets 'ofset', but no step or datasource read it in replicate 0; "
        "did you mean 'offset'?"
    ]


# --- 6. the seed_fn warning -----------------------------------------------------------------------
class GlobalSource(DataSource):
    def fetch(self, ctx: FrozenContext) -> float:
        return float(np.random.random())


class GlobalStep(PipelineStep):
    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        return data, {"v": data + random.random()}


class CtxStep(PipelineStep):
    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        return data, {"v": data + ctx.random.random()}


@pytest.mark.parametrize("executor", ["serial", "thread", "process", "async"])
@pytest.mark.parametrize(
    ("source", "step", "drew"),
    [
        (CtxRandomSource, CtxStep, None),
        (GlobalSource, CtxStep, "numpy.random"),
        (CtxRandomSource, GlobalStep, "random"),
    ],
    ids=["ctx-generators", "global-numpy", "global-random"],
)
def test_the_seed_fn_warning_only_after_a_draw_from_a_global_generator(
    executor: str,
    source: type,
    step: type,
    drew: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    plugins = {
        "serial": [],
        "thread": [ParallelExecution(executor_type="thread", max_workers=2)],
        "process": [ParallelExecution(executor_type="process", max_workers=2)],
        "async": [AsyncExecution()],
    }[executor]
    exp = Experiment(
        source(), Pipeline([step()]), plugins=[SeedPlugin(seed=5), *plugins], replicates=4
    )
    with caplog.at_level(logging.WARNING, logger="crystallize"):
        exp.run()
    said = [w for w in _warnings(caplog) if "No seed_fn provided" in w]
    if drew is None:
        assert said == []
    else:
        assert len(said) == 1 and f"drew from the global {drew} generator" in said[0]
        assert "ctx.rng" in said[0]


def test_no_seed_fn_warning_when_a_seed_fn_is_given(caplog: pytest.LogCaptureFixture) -> None:
    exp = Experiment(
        GlobalSource(),
        Pipeline([GlobalStep()]),
        plugins=[SeedPlugin(seed=5, seed_fn=random.seed)],
        replicates=2,
    )
    with caplog.at_level(logging.WARNING, logger="crystallize"):
        exp.run()
    assert not [w for w in _warnings(caplog) if "No seed_fn provided" in w]
