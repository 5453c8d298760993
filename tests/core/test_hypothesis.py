"""Hypotheses: metric grouping, missing metrics, ranking (contract §9, §19.15)."""

from __future__ import annotations

from typing import Any

import pytest
from fixtures import AddStep, ConstantSource, FailStep

from crystallize_dist import (
    BasePlugin,
    Experiment,
    Hypothesis,
    MissingMetricError,
    Pipeline,
    SeedPlugin,
    Treatment,
)
from crystallize_dist.utils.exceptions import CrystallizeError


def recorder(calls: list[tuple[dict[str, Any], dict[str, Any]]]) -> Any:
    def verify(baseline: dict[str, Any], treatment: dict[str, Any]) -> dict[str, Any]:
        calls.append((baseline, treatment))
        return {"p_value": sum(treatment[k][0] for k in treatment) / 100}

    return verify


BASE = {"a": [1], "b": [2], "c": [3]}
TREAT = {"a": [10], "b": [20], "c": [30]}


@pytest.mark.parametrize(
    ("spec", "groups", "single"),
    [
        (None, [["a", "b", "c"]], True),
        ("b", [["b"]], True),
        (["a", "c"], [["a", "c"]], True),
        ([["a"], ["b", "c"]], [["a"], ["b", "c"]], False),
    ],
)
def test_metric_grouping(spec: Any, groups: list[list[str]], single: bool) -> None:
    calls: list[tuple[dict[str, Any], dict[str, Any]]] = []
    out = Hypothesis(verifier=recorder(calls), metrics=spec).verify(BASE, TREAT)
    assert [sorted(b) for b, _ in calls] == groups
    assert [sorted(t) for _, t in calls] == groups
    assert calls[0][0] == {k: BASE[k] for k in groups[0]}
    if single:
        assert isinstance(out, dict)
    else:
        assert isinstance(out, list) and len(out) == len(groups)


def test_missing_metric_on_either_side_raises() -> None:
    hyp = Hypothesis(verifier=recorder([]), metrics=["a", "zzz"])
    with pytest.raises(MissingMetricError, match="required metric 'zzz' missing"):
        hyp.verify(BASE, TREAT)
    with pytest.raises(MissingMetricError):
        Hypothesis(verifier=recorder([]), metrics="a").verify(BASE, {"b": [1]})
    assert issubclass(MissingMetricError, CrystallizeError)


def test_ranking_is_ascending_and_best_is_lowest() -> None:
    hyp = Hypothesis(verifier=recorder([]), ranker=lambda r: r["score"])
    ranking = hyp.rank_treatments({"x": {"score": 3}, "y": {"score": 1}, "z": {"score": 2}})
    assert ranking == {"best": "y", "ranked": [("y", 1), ("z", 2), ("x", 3)]}
    assert Hypothesis(verifier=recorder([])).rank_treatments({}) == {"best": None, "ranked": []}


def test_default_ranker_uses_p_value() -> None:
    hyp = Hypothesis(verifier=recorder([]))
    ranking = hyp.rank_treatments({"x": {"p_value": 0.2}, "y": {}})
    assert ranking["ranked"] == [("x", 0.2), ("y", 1.0)]


def test_names() -> None:
    def my_ranker(result: Any) -> float:
        return 0.0

    assert Hypothesis(verifier=recorder([])).name == "hypothesis"
    assert Hypothesis(verifier=recorder([]), ranker=my_ranker).name == "my_ranker"
    assert Hypothesis(verifier=recorder([]), ranker=lambda r: 0.0).name == "<lambda>"
    assert Hypothesis(verifier=recorder([]), ranker=my_ranker, name="n").name == "n"


def _experiment(**kwargs: Any) -> Experiment:
    return Experiment(
        datasource=ConstantSource(0),
        pipeline=Pipeline([AddStep()]),
        plugins=[SeedPlugin(seed=0)],
        **kwargs,
    )


def test_hypotheses_are_verified_per_treatment_after_the_run() -> None:
    calls: list[tuple[dict[str, Any], dict[str, Any]]] = []
    hyp = Hypothesis(verifier=recorder(calls), metrics="value", name="h")
    exp = _experiment(
        treatments=[Treatment("big", {"delta": 50}), Treatment("small", {"delta": 5})],
        hypotheses=[hyp],
    )
    result = exp.run(replicates=2)
    assert calls == [
        ({"value": [1, 1]}, {"value": [50, 50]}),
        ({"value": [1, 1]}, {"value": [5, 5]}),
    ]
    h = result.get_hypothesis("h")
    assert h is not None
    assert h.results == {"big": {"p_value": 0.5}, "small": {"p_value": 0.05}}
    assert h.get_for_treatment("small") == {"p_value": 0.05}
    assert h.ranking["best"] == "small"
    assert result.get_hypothesis("nope") is None


def test_hypotheses_without_treatments_raise_before_running() -> None:
    ran: list[int] = []
    exp = _experiment(hypotheses=[Hypothesis(verifier=lambda b, t: ran.append(1))])
    with pytest.raises(ValueError):
        exp.run()
    with pytest.raises(ValueError):
        exp.run(treatments=[])
    assert ran == []


def test_missing_metric_in_a_run_propagates() -> None:
    exp = _experiment(
        treatments=[Treatment("t", {"delta": 2})],
        hypotheses=[Hypothesis(verifier=recorder([]), metrics="absent")],
    )
    with pytest.raises(MissingMetricError):
        exp.run()


def test_treatment_whose_cells_all_failed_is_skipped_by_hypotheses() -> None:
    calls: list[tuple[dict[str, Any], dict[str, Any]]] = []
    exp = Experiment(
        datasource=ConstantSource(0),
        pipeline=Pipeline([FailStep([("bad", 0), ("bad", 1)])]),
        plugins=[SeedPlugin(seed=0)],
        treatments=[Treatment("bad", {}), Treatment("good", {})],
        hypotheses=[Hypothesis(verifier=recorder(calls), metrics="rep", name="h")],
    )
    result = exp.run(replicates=2)
    assert list(result.metrics.hypotheses[0].results) == ["good"]
    assert len(calls) == 1


def test_ranker_error_propagates_after_teardown_without_after_run() -> None:
    log: list[str] = []

    class Rec(BasePlugin):
        def after_run(self, experiment: Experiment, result: Any) -> None:
            log.append("after_run")

    class Step(AddStep):
        def teardown(self, ctx: Any) -> None:
            log.append("teardown")

    exp = Experiment(
        datasource=ConstantSource(0),
        pipeline=Pipeline([Step()]),
        plugins=[SeedPlugin(seed=0), Rec()],
        treatments=[Treatment("t", {"delta": 2})],
        hypotheses=[Hypothesis(verifier=recorder([]), ranker=lambda r: 1 / 0)],
        replicates=2,
    )
    with pytest.raises(ZeroDivisionError):
        exp.run()
    assert log == ["teardown"]
    assert exp.replicates == 2 and [t.name for t in exp.treatments] == ["t"]
