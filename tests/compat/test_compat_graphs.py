"""ExperimentGraph as in Crystallize 0.27: the constructor, treatment inheritance, progress
callbacks, cycles, config folders (``from_yaml``) and resuming a graph."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from compat_fixtures import ReadNumber, Record, ReplicateSource, WriteFile, write_number

from crystallize_dist import (
    Artifact,
    ArtifactPlugin,
    Experiment,
    ExperimentGraph,
    ExperimentInput,
    FrozenContext,
    Hypothesis,
    Pipeline,
    PipelineStep,
    Treatment,
)
from crystallize_dist.experiments.experiment_graph import find_experiments_root


class AddBoth(PipelineStep):
    def __call__(self, data: dict[str, bytes], ctx: FrozenContext) -> Any:
        return data, {"sum": int(data["x"]) + int(data["y"])}

    @property
    def params(self) -> dict[str, Any]:
        return {}


def _exp(name: str, treatments: list[Treatment] | None = None, **kw: Any) -> Experiment:
    return Experiment(
        ReplicateSource(), Pipeline([Record()]), name=name, treatments=treatments or [], **kw
    )


def test_the_constructor_infers_the_edges_from_artifacts() -> None:
    out_a, out_b = Artifact("a.txt"), Artifact("b.txt")
    a = Experiment(
        ReplicateSource(), Pipeline([write_number(out=out_a)]), name="a", outputs=[out_a]
    )
    b = Experiment(
        ReplicateSource(), Pipeline([write_number(out=out_b)]), name="b", outputs=[out_b]
    )
    c = Experiment(ExperimentInput(x=out_a, y=out_b), Pipeline([AddBoth()]), name="c")
    graph = ExperimentGraph(c, a, b)
    assert graph.name == "c" and graph.order()[-1] == "c"
    assert graph.upstream("c") == ["a", "b"] and graph.downstream("a") == ["c"]
    results = graph.run()
    assert set(results) == {"a", "b", "c"}
    assert results["c"].metrics.baseline.metrics["sum"] == [0]
    assert ExperimentGraph(a, b, c, name="mine").name == "mine"


def test_artifact_cycles_and_loose_experiments_are_refused() -> None:
    x, y = Artifact("x"), Artifact("y")
    a = Experiment(ExperimentInput(y=y), Pipeline([Record()]), name="a", outputs=[x])
    b = Experiment(ExperimentInput(x=x), Pipeline([Record()]), name="b", outputs=[y])
    with pytest.raises(ValueError, match=r"contains cycles: (a -> b -> a|b -> a -> b)"):
        ExperimentGraph.from_experiments([a, b])
    with pytest.raises(ValueError, match=r"Unused experiments detected.*: lonely"):
        ExperimentGraph.from_experiments([_exp("one"), _exp("lonely")])
    shared = Artifact("same")
    with pytest.raises(ValueError, match="produced by multiple experiments"):
        ExperimentGraph.from_experiments([_exp("p", outputs=[shared]), _exp("q", outputs=[shared])])
    graph = ExperimentGraph()
    one, two = _exp("one"), _exp("two")
    graph.add_experiment(one)
    graph.add_experiment(two)
    graph.add_dependency(two, one)
    graph.add_dependency(one, two)
    with pytest.raises(ValueError, match="contains cycles"):
        graph.run()


def test_nodes_inherit_the_treatments_of_the_experiments_upstream() -> None:
    inc = Treatment("inc", {"increment": 1})
    own = Treatment("inc", {"increment": 5})  # the node's own wins on a name
    a, b = _exp("a", [inc]), _exp("b", [Treatment("other", {"increment": 2})])
    c, d = _exp("c"), _exp("d", [own])
    graph = ExperimentGraph()
    for exp in (a, b, c, d):
        graph.add_experiment(exp)
    graph.add_dependency(c, a)
    graph.add_dependency(c, b)
    graph.add_dependency(d, c)
    results = graph.run(replicates=2)
    assert set(results["c"].metrics.treatments) == {"inc", "other"}
    assert results["c"].metrics.treatments["inc"].metrics["val"] == [1, 2]
    assert results["d"].metrics.treatments["inc"].metrics["val"] == [5, 6]
    assert set(results["d"].metrics.treatments) == {"inc", "other"}
    # treatments given to run() are every node's, nothing inherited
    given = graph.run(treatments=[Treatment("only", {"increment": 9})])
    assert all(set(r.metrics.treatments) == {"only"} for r in given.values())


def test_replicates_default_to_each_experiments_own() -> None:
    graph = ExperimentGraph()
    a, b = _exp("a", replicates=1), _exp("b", replicates=3)
    graph.add_experiment(a)
    graph.add_experiment(b)
    graph.add_dependency(b, a)
    results = graph.run()
    assert results["a"].metrics.baseline.metrics["val"] == [0]
    assert results["b"].metrics.baseline.metrics["val"] == [0, 1, 2]


def test_arun_awaits_the_progress_callback_around_each_node() -> None:
    graph = ExperimentGraph()
    a, b = _exp("a"), _exp("b")
    graph.add_experiment(a)
    graph.add_experiment(b)
    graph.add_dependency(b, a)
    events: list[tuple[str, str]] = []

    async def callback(status: str, name: str) -> None:
        events.append((status, name))

    results = asyncio.run(graph.arun(progress_callback=callback))
    assert events == [("running", "a"), ("completed", "a"), ("running", "b"), ("completed", "b")]
    assert results["b"].digest == graph.run()["b"].digest


# --- config folders -------------------------------------------------------------------------
STEPS = """
from crystallize_dist import Artifact, FrozenContext, pipeline_step


@pipeline_step()
def write_it(data, ctx: FrozenContext, dest: Artifact):
    dest.write(str(data))
    ctx.metrics.add("val", data)
    return data


@pipeline_step()
def read_it(data, ctx: FrozenContext):
    ctx.metrics.add("read", int(data["prev"]))
    return data
"""
SOURCES = """
from crystallize_dist import data_source


@data_source
def constant(ctx, value=1):
    return value + ctx.get("replicate", 0)
"""


def _folder(
    root: Path,
    name: str,
    datasource: dict[str, str],
    steps: list[Any],
    outputs: dict[str, Any] | None = None,
) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "steps.py").write_text(STEPS)
    (folder / "datasources.py").write_text(SOURCES)
    config = {
        "name": name,
        "datasource": datasource,
        "steps": steps,
        "replicates": 2,
        "outputs": outputs or {},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def _pair(root: Path) -> tuple[Path, Path]:
    producer = _folder(
        root,
        "producer",
        {"x": "constant"},
        [{"write_it": {"dest": "number"}}],
        {"number": {"file_name": "n.txt"}},
    )
    reader = _folder(root, "reader", {"prev": "producer#number"}, ["read_it"])
    return producer, reader


def test_from_yaml_loads_the_referenced_experiments_once_and_runs_them_first(
    tmp_path: Path,
) -> None:
    _, reader = _pair(tmp_path / "experiments")
    graph = ExperimentGraph.from_yaml(reader / "config.yaml")
    assert graph.order() == ["producer", "reader"] and graph.name == "reader"
    produced = graph.experiments["producer"].outputs["number"]  # keyed by alias, as upstream
    assert graph.experiments["reader"].datasource.required_outputs == [produced]
    results = graph.run()
    assert results["reader"].metrics.baseline.metrics["read"] == [1, 2]
    # a folder of config folders gives the same graph
    assert ExperimentGraph.from_yaml(tmp_path / "experiments").order() == graph.order()


def test_from_yaml_errors_say_what_is_missing_or_circular(tmp_path: Path) -> None:
    lonely = _folder(tmp_path, "lonely", {"prev": "missing#number"}, ["read_it"])
    with pytest.raises(FileNotFoundError, match="missing#number"):
        ExperimentGraph.from_yaml(lonely / "config.yaml")
    _folder(
        tmp_path / "loop",
        "a",
        {"input": "b#number"},
        [{"write_it": {"dest": "number"}}],
        {"number": {}},
    )
    _folder(
        tmp_path / "loop",
        "b",
        {"input": "a#number"},
        [{"write_it": {"dest": "number"}}],
        {"number": {}},
    )
    with pytest.raises(ValueError, match="contains cycles: a -> b -> a"):
        ExperimentGraph.from_yaml(tmp_path / "loop" / "a" / "config.yaml")
    with pytest.raises(ValueError, match="contains cycles"):
        Experiment.from_yaml(tmp_path / "loop" / "a")
    bad = _folder(
        tmp_path, "bad", {"x": "constant"}, [{"write_it": {"dest": "nowhere"}}], {"number": {}}
    )
    with pytest.raises(ValueError, match="asks for output 'nowhere'"):
        Experiment.from_yaml(bad)


def test_find_experiments_root(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "with" / "experiments"
    (root / "a" / "b").mkdir(parents=True)
    assert find_experiments_root(root / "a" / "b") == root
    assert find_experiments_root(root.parent) == root
    elsewhere = tmp_path / "without" / "deep"
    elsewhere.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="Could not locate 'experiments'"):
        find_experiments_root(elsewhere)
    with caplog.at_level(logging.WARNING):
        assert find_experiments_root(elsewhere, strict=False) == elsewhere.resolve()
    assert "Could not locate 'experiments' dir" in caplog.text


# --- resume -----------------------------------------------------------------------------------
def _producer(root: Path, step: WriteFile, names: list[str]) -> Experiment:
    return Experiment(
        ReplicateSource(),
        Pipeline([step]),
        name="a",
        plugins=[ArtifactPlugin(root_dir=str(root))],
        outputs=[Artifact(n) for n in names],
        treatments=[Treatment("inc", {"increment": 10})],
        hypotheses=[
            Hypothesis(verifier=lambda b, t: {"diff": sum(t["val"]) - sum(b["val"])}, metrics="val")
        ],
        replicates=2,
    )


def test_resume_skips_a_complete_node_and_reads_its_result_back(tmp_path: Path) -> None:
    first = WriteFile()
    done = ExperimentGraph(_producer(tmp_path, first, ["out.txt"])).run()["a"]
    assert first.calls == 4
    again = WriteFile()
    resumed = ExperimentGraph(_producer(tmp_path, again, ["out.txt"])).run(strategy="resume")["a"]
    assert again.calls == 0
    assert resumed.metrics.baseline.metrics == done.metrics.baseline.metrics == {"val": [0, 1]}
    assert resumed.metrics.treatments["inc"].metrics == {"val": [10, 11]}
    assert resumed.metrics.hypotheses[0].results["inc"] == {"diff": 20}
    # the artifact paths come back too (the first replicate's file of each condition)
    paths = resumed.artifacts["out.txt"]
    assert set(paths) == {"baseline", "inc"} and paths == done.artifacts["out.txt"]
    assert Path(paths["inc"]).read_text() == "10"
    # resumed with fewer treatments: the result is the one running it again would give
    fewer = ExperimentGraph(_producer(tmp_path, again, ["out.txt"])).run(
        strategy="resume", treatments=[]
    )["a"]
    assert again.calls == 0 and fewer.metrics.treatments == {}
    assert set(fewer.artifacts["out.txt"]) == {"baseline"}


def test_resume_reruns_a_node_whose_reader_needs_a_file_it_did_not_write(
    tmp_path: Path,
) -> None:
    ExperimentGraph(_producer(tmp_path, WriteFile("one.txt"), ["one.txt"])).run()
    step = WriteFile("two.txt")
    producer = _producer(tmp_path, step, ["one.txt", "two.txt"])
    reader = Experiment(
        ExperimentInput(two=producer.outputs["two.txt"]),
        Pipeline([Record()]),
        name="b",
        plugins=[ArtifactPlugin(root_dir=str(tmp_path))],
    )
    ExperimentGraph(producer, reader).run(strategy="resume")
    assert step.calls == 4  # two.txt was never written: the producer ran again


def test_resume_without_an_earlier_run_runs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    step = WriteFile()
    with caplog.at_level(logging.WARNING, logger="crystallize"):
        ExperimentGraph(_producer(tmp_path, step, ["out.txt"])).run(strategy="resume")
    assert step.calls == 4 and "No previous run for a" in caplog.text


def test_an_artifact_datasource_reads_what_the_producer_wrote(tmp_path: Path) -> None:
    producer = _producer(tmp_path, WriteFile(), ["out.txt"])
    reader = Experiment(
        producer.outputs["out.txt"],
        Pipeline([ReadNumber()]),
        name="b",
        treatments=[Treatment("inc", {}), Treatment("new", {})],
        replicates=3,
    )
    results = ExperimentGraph(producer, reader).run(treatments=None)
    # replicate r reads the producer's replicate r % 2; a condition the producer did not
    # run ("new") falls back to the producer's baseline
    assert results["b"].metrics.baseline.metrics["read"] == [0, 1, 0]
    assert results["b"].metrics.treatments["inc"].metrics["read"] == [10, 11, 10]
    assert results["b"].metrics.treatments["new"].metrics["read"] == [0, 1, 0]
