"""Bad input gives a clear one-line error (or a recorded cell error), never a silent wrong
result (DESIGN.md §4.7)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crystallize_dist import (
    DataSource,
    Experiment,
    FrozenContext,
    ParallelExecution,
    Pipeline,
    PipelineStep,
    Treatment,
    load_experiment,
)
from crystallize_dist.engine.records import convert_metrics
from crystallize_dist.errors import ConfigError, ExperimentLoadError, MetricValueError


class OneSource(DataSource):
    def fetch(self, ctx: FrozenContext) -> int:
        return 1


class RecordStep(PipelineStep):
    """Records every item of ``ctx["to_record"]`` (a treatment can add it)."""

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        for key, value in ctx.get("to_record", {}).items():
            ctx.metrics.add(key, value)
        ctx.metrics.add("ok", 1.0)
        return data


class ObjectMetricStep(PipelineStep):
    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        ctx.metrics.add("ok", 1.0)
        ctx.metrics.add("weird", object())
        return data


class NumpyMetricStep(PipelineStep):
    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        ctx.metrics.add("f32", np.float32(1.5))
        ctx.metrics.add("i64", np.int64(7))
        ctx.metrics.add("flag", np.bool_(True))
        ctx.metrics.add("arr", np.arange(3))
        ctx.metrics.add("matrix", np.eye(2))
        return data, {"tuple_metric": np.float64(0.25)}


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert message and "\n" not in message, repr(message)
    return message


def _experiment(step: PipelineStep | None = None, **kwargs: Any) -> Experiment:
    return Experiment(OneSource(), Pipeline([step or RecordStep()]), **kwargs)


# --- experiment arguments -----------------------------------------------------------------------
def test_non_integer_replicates_at_construction() -> None:
    with pytest.raises(TypeError) as exc:
        _experiment(replicates="three")
    message = _one_line(exc)
    assert "replicates" in message and "'three'" in message


def test_non_integer_replicates_at_run() -> None:
    exp = _experiment()
    with pytest.raises(TypeError) as exc:
        exp.run(replicates="three")  # type: ignore[arg-type]
    message = _one_line(exc)
    assert "replicates" in message and "'three'" in message


def test_empty_pipeline() -> None:
    with pytest.raises(ValueError) as exc:
        Pipeline([])
    assert "at least one step" in _one_line(exc)


def test_apply_with_unknown_treatment_name() -> None:
    exp = _experiment(treatments=[Treatment("real", {"x": 1})])
    with pytest.raises(ValueError) as exc:
        exp.apply("nope")
    message = _one_line(exc)
    assert "'nope'" in message and "real" in message


# --- metric values ------------------------------------------------------------------------------
@pytest.mark.parametrize("executor", ["serial", "process"])
def test_unserialisable_metric_is_a_cell_error(executor: str) -> None:
    plugins = (
        [ParallelExecution(executor_type="process", max_workers=2)] if executor == "process" else []
    )
    exp = _experiment(ObjectMetricStep(), plugins=plugins, replicates=2)
    result = exp.run()
    assert sorted(result.errors) == ["baseline_rep_0", "baseline_rep_1"]
    err = result.errors["baseline_rep_0"]
    message = str(err)
    assert "\n" not in message
    assert "'weird'" in message and "object" in message
    assert getattr(err, "error_type", None) == "MetricValueError"
    assert result.metrics.baseline.metrics == {}  # the good metric of a failed cell is dropped


def test_unserialisable_metric_in_a_treatment_only_fails_that_treatment() -> None:
    exp = _experiment(treatments=[Treatment("bad", {"to_record": {"thing": {1, 2}}})], replicates=2)
    result = exp.run()
    assert sorted(result.errors) == ["bad_rep_0", "bad_rep_1"]
    assert "'thing'" in str(result.errors["bad_rep_1"]) and "set" in str(result.errors["bad_rep_1"])
    assert result.metrics.baseline.metrics == {"ok": [1.0, 1.0]}


def test_numpy_metrics_are_converted_not_errors() -> None:
    result = _experiment(NumpyMetricStep()).run()
    assert result.errors == {}
    metrics = result.metrics.baseline.metrics
    assert metrics == {
        "f32": [1.5],
        "i64": [7],
        "flag": [True],
        "arr": [[0, 1, 2]],
        "matrix": [[[1.0, 0.0], [0.0, 1.0]]],
        "tuple_metric": [0.25],
    }
    assert type(metrics["f32"][0]) is float and type(metrics["i64"][0]) is int
    assert type(metrics["flag"][0]) is bool and type(metrics["tuple_metric"][0]) is float


# --- config folders -----------------------------------------------------------------------------
DATASOURCES = """
from crystallize_dist import data_source

@data_source
def numbers(ctx):
    return 1
"""

STEPS = """
from crystallize_dist import pipeline_step

@pipeline_step()
def add(data, ctx, delta=1):
    return data + delta, {"val": data + delta}
"""

GOOD_CONFIG = """
name: folder
replicates: 2
datasource: numbers
steps: [add]
treatments:
  more: {delta: 2}
"""


def _folder(tmp_path: Path, config: str, *, datasources: str = DATASOURCES) -> Path:
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "config.yaml").write_text(textwrap.dedent(config).lstrip())
    (folder / "datasources.py").write_text(datasources)
    (folder / "steps.py").write_text(STEPS)
    return folder


def _config_error(folder: Path) -> str:
    with pytest.raises(ConfigError) as exc:
        Experiment.from_yaml(folder)
    message = _one_line(exc)
    assert str(folder / "config.yaml") in message, message
    with pytest.raises(ConfigError) as again:  # the same error through a folder reference
        load_experiment(str(folder))
    assert str(again.value) == message
    return message


def test_good_folder_runs(tmp_path: Path) -> None:
    result = Experiment.from_yaml(_folder(tmp_path, GOOD_CONFIG)).run()
    assert result.metrics.baseline.metrics == {"val": [2, 2]}
    assert result.metrics.treatments["more"].metrics == {"val": [3, 3]}


def test_folder_without_datasource(tmp_path: Path) -> None:
    config = GOOD_CONFIG.replace("datasource: numbers\n", "")
    message = _config_error(_folder(tmp_path, config))
    assert "'datasource'" in message and "missing" in message


def test_folder_datasource_not_defined(tmp_path: Path) -> None:
    config = GOOD_CONFIG.replace("datasource: numbers", "datasource: lettres")
    message = _config_error(_folder(tmp_path, config))
    assert "'datasource.lettres'" in message and "datasources.py" in message


def test_folder_datasource_file_missing(tmp_path: Path) -> None:
    folder = _folder(tmp_path, GOOD_CONFIG)
    (folder / "datasources.py").unlink()
    message = _config_error(folder)
    assert "datasource" in message and "datasources.py" in message


def test_folder_unknown_top_level_key(tmp_path: Path) -> None:
    message = _config_error(_folder(tmp_path, GOOD_CONFIG + "replicate: 5\n"))
    assert "unknown key 'replicate'" in message


def test_folder_non_mapping_treatment(tmp_path: Path) -> None:
    config = GOOD_CONFIG.replace("more: {delta: 2}", "more: 2")
    message = _config_error(_folder(tmp_path, config))
    assert "'treatments.more'" in message and "mapping" in message


def test_folder_non_integer_replicates(tmp_path: Path) -> None:
    config = GOOD_CONFIG.replace("replicates: 2", "replicates: two")
    message = _config_error(_folder(tmp_path, config))
    assert "'replicates'" in message and "'two'" in message


def test_folder_malformed_yaml(tmp_path: Path) -> None:
    config = GOOD_CONFIG.replace("steps: [add]", "steps: [add\n  - oops: {")
    message = _config_error(_folder(tmp_path, config))
    assert "malformed YAML" in message
    assert f"{tmp_path / 'exp' / 'config.yaml'}:" in message  # file:line


@pytest.mark.parametrize(
    ("source", "line", "needle"),
    [
        ("import os\n\nX = os.environ['CDIST_SURELY_UNSET']\n", 3, "KeyError"),
        ("from crystallize_dist import Pipeline\n\n\np = Pipeline([])\n", 4, "ValidationError"),
    ],
    ids=["stdlib-raises", "library-raises"],
)
def test_an_import_error_names_the_users_line(
    tmp_path: Path, source: str, line: int, needle: str
) -> None:
    """The error points at the experiment's own line, not at the library or stdlib line
    that raised."""
    path = tmp_path / "raising.py"
    path.write_text(source)
    with pytest.raises(ExperimentLoadError) as exc:
        load_experiment(str(path))
    assert str(exc.value).startswith(f"{path}:{line}: cannot import raising.py: {needle}")


@pytest.mark.parametrize(
    ("value", "kind"),
    [(np.complex128(1 + 2j), "complex"), (np.datetime64("2020-01-01"), "date"),
     (complex(1, 2), "complex")],
    ids=["np.complex128", "np.datetime64", "complex"],
)
def test_numpy_scalars_without_a_json_form_are_metric_errors(value: Any, kind: str) -> None:
    """A numpy scalar counts as the Python value it stands for: complex or date has no JSON
    form, wherever it comes from."""
    with pytest.raises(MetricValueError, match=kind):
        convert_metrics({"m": [value]})
    assert convert_metrics({"m": [np.float32(0.5), np.int64(3)]}) == {"m": [0.5, 3]}
