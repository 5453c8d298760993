"""Results as in Crystallize 0.27: stored metrics, ResultAggregator and ReplicateResult's
fields, errors that are the original exception types, print_tree's summary tree."""

from __future__ import annotations

import json
import pickle
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from compat_fixtures import Record, ReplicateSource

from crystallize_dist import (
    BasePlugin,
    DataSource,
    Experiment,
    FrozenContext,
    Pipeline,
    PipelineStep,
    Result,
    SeedPlugin,
    Treatment,
)
from crystallize_dist.errors import CellError, PipelineExecutionError
from crystallize_dist.experiments.aggregation import AggregateData, ResultAggregator
from crystallize_dist.experiments.result_structs import ExperimentMetrics, TreatmentMetrics
from crystallize_dist.experiments.run_results import ReplicateResult
from crystallize_dist.plugins.artifacts import load_all_metrics, load_metrics


def _store(root: Path, version: int, condition: str, metrics: dict[str, Any]) -> None:
    folder = root / f"v{version}" / condition
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps({"metrics": metrics}))


def test_stored_metrics_read_back_in_crystallizes_shapes(tmp_path: Path) -> None:
    assert load_metrics(tmp_path) == (-1, {}, {}) == load_all_metrics(tmp_path)
    _store(tmp_path, 0, "baseline", {"m": [1]})
    _store(tmp_path, 0, "a", {"m": [2]})
    _store(tmp_path, 1, "baseline", {"m": [3]})
    _store(tmp_path, 1, "b", {"m": [4]})
    (tmp_path / "v1" / "empty").mkdir()  # a condition folder without results is left out
    assert load_metrics(tmp_path) == (1, {"m": [3]}, {"b": {"m": [4]}})
    assert load_metrics(tmp_path, version=0) == (0, {"m": [1]}, {"a": {"m": [2]}})
    latest, baseline, treatments = load_all_metrics(tmp_path)
    assert (latest, baseline) == (1, {"m": [3]})
    assert treatments == {"a": (0, {"m": [2]}), "b": (1, {"m": [4]})}
    assert load_all_metrics(tmp_path, version=0) == (0, {"m": [1]}, {"a": (0, {"m": [2]})})


def test_result_aggregator_groups_replicate_results() -> None:
    boom = RuntimeError("boom")
    reps = [
        ReplicateResult({"m": (1,)}, 10, {"t": {"m": (2,)}}, {"t": 20}, {}, {"baseline": ["p0"]}),
        ReplicateResult(None, None, {}, {}, {"baseline_rep_1": boom}, {}),
        ReplicateResult({"m": (5, 6)}, 12, {"t": {"m": (7,)}}, {"t": 22}, {}, {}),
    ]
    pipeline = Pipeline([Record()])
    agg = ResultAggregator(pipeline, replicates=3)
    data = agg.aggregate_results(reps)
    assert data.baseline_metrics == {"m": [1, 5, 6]} and data.baseline_seeds == [10, 12]
    assert data.treatment_metrics_dict == {"t": {"m": [2, 7]}}
    assert data.treatment_seeds_agg == {"t": [20, 22]}
    assert data.provenance_runs["baseline"] == {0: ["p0"]}
    assert data.errors["baseline_rep_1"] is boom  # the very exception
    metrics = ExperimentMetrics(TreatmentMetrics(data.baseline_metrics), {}, [])
    result = agg.build_result(metrics, data)
    assert result.metrics is metrics and result.errors["baseline_rep_1"] is boom
    assert result.provenance["seeds"] == {"baseline": [10, 12], "t": [20, 22]}
    assert result.provenance["pipeline_signature"] == pipeline.signature()
    empty = AggregateData({}, {}, [], {}, defaultdict(dict), {})
    assert agg.build_result(metrics, empty).provenance["ctx_changes"] == {}


def _experiment(*plugins: BasePlugin) -> Experiment:
    return Experiment(
        ReplicateSource(),
        Pipeline([Record()]),
        plugins=[SeedPlugin(seed=5), *plugins],
        treatments=[Treatment("t", {"increment": 10})],
        replicates=3,
    )


def test_replicate_results_read_as_crystallizes_fields() -> None:
    seen: list[ReplicateResult] = []

    class Keep(BasePlugin):
        def run_experiment_loop(self, experiment: Any, replicate_fn: Any) -> Any:
            seen.extend(replicate_fn(r) for r in range(experiment.replicates))
            return seen

    result = _experiment(Keep()).run()
    first = seen[0]
    assert first.baseline_metrics == {"val": (0,)} and first.treatment_metrics == {
        "t": {"val": (10,)}
    }
    assert first.baseline_seed == first.treatment_seeds["t"] == 5
    assert first.errors == {} and first.provenance["baseline"][0]["step"] == "Record"
    assert result.metrics.treatments["t"].metrics["val"] == [10, 11, 12]


def test_an_executor_may_return_replicate_results_built_from_fields() -> None:
    class Made(BasePlugin):
        """Builds each replicate's result by hand, as code written for Crystallize may."""

        def run_experiment_loop(self, experiment: Any, replicate_fn: Any) -> Any:
            out = []
            for r in range(experiment.replicates):
                got = replicate_fn(r)
                out.append(
                    ReplicateResult(
                        got.baseline_metrics,
                        got.baseline_seed,
                        got.treatment_metrics,
                        got.treatment_seeds,
                        got.errors,
                        got.provenance,
                    )
                )
            return out

    made, serial = _experiment(Made()).run(), _experiment().run()
    assert made.digest == serial.digest
    assert made.provenance["seeds"] == serial.provenance["seeds"]


class Failing(DataSource):
    def fetch(self, ctx: FrozenContext) -> Any:
        if ctx["condition"] == "baseline":
            raise FileNotFoundError("no data")
        return 1


class Bad(PipelineStep):
    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        raise ValueError("bad value")

    @property
    def params(self) -> dict[str, Any]:
        return {}


def test_errors_are_cell_errors_and_the_original_exception_types() -> None:
    result = Experiment(Failing(), Pipeline([Record()]), replicates=1).run()
    err = result.errors["baseline_rep_0"]
    assert isinstance(err, CellError) and isinstance(err, FileNotFoundError)
    assert isinstance(err, OSError) and str(err) == "no data"
    for again in (
        pickle.loads(pickle.dumps(err)),
        Result.from_json(result.to_json() or "").errors["baseline_rep_0"],
    ):
        assert isinstance(again, FileNotFoundError) and again == err
    step = Experiment(ReplicateSource(), Pipeline([Bad()])).run().errors["baseline_rep_0"]
    assert isinstance(step, PipelineExecutionError) and isinstance(step, CellError)
    assert isinstance(step.original_exception, ValueError)
    assert str(step.original_exception) == "bad value"
    assert isinstance(pickle.loads(pickle.dumps(step)).original_exception, ValueError)


def _tree_result() -> Result:
    provenance = {
        "ctx_changes": {
            "baseline": {
                0: [
                    {
                        "step": "AddStep",
                        "ctx_changes": {
                            "reads": {"x": 1},
                            "wrote": {},
                            "metrics": {"m": {"before": (), "after": (2,)}},
                        },
                    },
                    {"step": "Quiet", "ctx_changes": {"reads": {}, "wrote": {}, "metrics": {}}},
                ]
            }
        }
    }
    return Result(ExperimentMetrics(TreatmentMetrics({}), {}, []), provenance=provenance)


def test_print_tree_shows_crystallizes_summary(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree_result().print_tree()
    shown = capsys.readouterr().out
    for text in (
        "Experiment Summary",
        "Treatment 'baseline'",
        "Replicate 0",
        "Step AddStep",
        "Reads",
        "x=1",
        "Write Metrics",
        "m: () -> (2,)",
    ):
        assert text in shown
    assert "Quiet" not in shown  # a step that read, wrote and recorded nothing
    for name in ("rich", "rich.console", "rich.markup", "rich.tree"):
        monkeypatch.setitem(sys.modules, name, None)  # no rich: plain, indented text
    _tree_result().print_tree("step > action")
    plain = capsys.readouterr().out.splitlines()
    assert plain == [
        "Experiment Summary",
        "  Step AddStep",
        "    Reads",
        "      x=1",
        "    Write Metrics",
        "      m: () -> (2,)",
    ]
    with pytest.raises(ValueError, match="'action' must be the final element"):
        _tree_result().print_tree("action > step")
    with pytest.raises(ValueError, match="unknown tokens"):
        _tree_result().print_tree("treatment > colour")


def test_pandas_helpers_say_pandas_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    result = _tree_result()
    with pytest.raises(ImportError, match="pandas is required for to_parquet"):
        result.to_parquet("x.parquet")
    with pytest.raises(ImportError, match="pandas is required for to_df"):
        result.metrics.to_df()
