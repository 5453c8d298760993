"""ExperimentGraph: experiments chained through artifacts run in dependency order."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fixtures import ConstantSource

from crystallize_dist import (
    Artifact,
    ArtifactPlugin,
    Experiment,
    ExperimentGraph,
    ExperimentInput,
    FrozenContext,
    Pipeline,
    SeedPlugin,
    Treatment,
    pipeline_step,
)
from crystallize_dist.errors import ValidationError

NUMBERS = Artifact("numbers.txt")
DOUBLED = Artifact("doubled.txt")


@pipeline_step()
def write_number(data: int, ctx: FrozenContext, out: Artifact = NUMBERS) -> Any:
    out.write(str(ctx["replicate"] + ctx.get("plus", 0)))
    return data, {"wrote": ctx["replicate"]}


@pipeline_step()
def double_it(data: bytes, ctx: FrozenContext, out: Artifact = DOUBLED) -> Any:
    out.write(str(2 * int(data)))
    return data, {"doubled": 2 * int(data)}


@pipeline_step()
def add_both(data: dict[str, bytes], ctx: FrozenContext) -> Any:
    return data, {"sum": int(data["a"]) + int(data["b"])}


def _exp(name: str, source: Any, step: Any, root: Path, outputs: list[Artifact]) -> Experiment:
    return Experiment(
        datasource=source,
        pipeline=Pipeline([step]),
        plugins=[SeedPlugin(seed=1), ArtifactPlugin(root_dir=str(root))],
        name=name,
        outputs=outputs,
        treatments=[Treatment("plus", {"plus": 10})],
        replicates=2,
    )


def _chain(root: Path) -> list[Experiment]:
    first = _exp("first", ConstantSource(0), write_number(), root, [NUMBERS])
    second = _exp("second", NUMBERS, double_it(), root, [DOUBLED])
    third = _exp("third", ExperimentInput(a=NUMBERS, b=DOUBLED), add_both(), root, [])
    return [third, second, first]  # listed out of order on purpose


def test_a_chain_runs_producers_first_and_reads_their_artifacts(tmp_path: Path) -> None:
    graph = ExperimentGraph.from_experiments(_chain(tmp_path))
    assert graph.order() == ["first", "second", "third"]
    assert graph.name == "third"  # the one experiment nothing depends on
    results = graph.run()
    assert list(results) == ["first", "second", "third"]
    assert results["second"].metrics.baseline.metrics["doubled"] == [0, 2]
    assert results["second"].metrics.treatments["plus"].metrics["doubled"] == [20, 22]
    assert results["third"].metrics.baseline.metrics["sum"] == [0, 3]
    assert results["third"].metrics.treatments["plus"].metrics["sum"] == [30, 33]
    again = asyncio.run(ExperimentGraph.from_experiments(_chain(tmp_path)).arun())
    assert {n: r.digest for n, r in again.items()} == {n: r.digest for n, r in results.items()}


def test_graph_errors_name_the_experiment_or_artifact(tmp_path: Path) -> None:
    first, second, third = _chain(tmp_path)[::-1]
    with pytest.raises(ValidationError, match=r"'numbers\.txt' read by 'second'"):
        ExperimentGraph.from_experiments([second])
    lonely = _exp("lonely", ConstantSource(0), write_number(), tmp_path, [])
    with pytest.raises(ValidationError, match="not connected to the rest: lonely"):
        ExperimentGraph.from_experiments([first, second, lonely])
    twin = _exp("twin", ConstantSource(0), write_number(), tmp_path, [NUMBERS])
    with pytest.raises(ValidationError, match="produced by multiple experiments: both"):
        ExperimentGraph.from_experiments([first, twin, second])
    namesake = _exp("first", ConstantSource(1), write_number(), tmp_path, [])
    with pytest.raises(ValidationError, match="two experiments of the graph are named 'first'"):
        ExperimentGraph.from_experiments([first, second, namesake])
    unnamed = Experiment(ConstantSource(0), Pipeline([write_number()]))
    with pytest.raises(ValidationError, match="must have a name"):
        ExperimentGraph().add_experiment(unnamed)
    graph = ExperimentGraph()
    graph.add_experiment(first)
    graph.add_experiment(second)
    with pytest.raises(ValidationError, match="'third' to the graph first"):
        graph.add_dependency(third, second)
    graph.add_dependency(second, first)
    graph.add_dependency(first, second)
    with pytest.raises(ValidationError, match="cycle"):
        graph.order()
