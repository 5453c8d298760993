"""ArtifactPlugin layout, versions, results files and resume (contract §11.4, §19.16-17)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fixtures import AddStep, ConstantSource, WriteArtifactStep

from crystallize_dist import (
    Artifact,
    ArtifactPlugin,
    BasePlugin,
    Experiment,
    FrozenContext,
    ParallelExecution,
    Pipeline,
    PipelineStep,
    SeedPlugin,
    Treatment,
    pipeline_step,
)
from crystallize_dist.plugins import load_all_metrics, load_metrics

TREATMENTS = [Treatment("t", {"delta": 5})]


def _experiment(
    root: Path, *, versioned: bool = False, plugins: list[BasePlugin] | None = None, **kw: Any
) -> Experiment:
    return Experiment(
        datasource=ConstantSource(0),
        pipeline=Pipeline(kw.pop("steps", [WriteArtifactStep(), AddStep()])),
        plugins=[
            SeedPlugin(seed=0),
            ArtifactPlugin(root_dir=str(root), versioned=versioned),
            *(plugins or []),
        ],
        name=kw.pop("name", "exp"),
        treatments=kw.pop("treatments", TREATMENTS),
        **kw,
    )


def test_layout_of_one_version(tmp_path: Path) -> None:
    root = tmp_path / "arts"
    exp = _experiment(root)
    result = exp.run(replicates=2)
    vdir = root / "exp" / "v0"
    for r in range(2):
        for cond in ("baseline", "t"):
            path = vdir / f"replicate_{r}" / cond / "WriteArtifactStep" / "out.txt"
            assert path.read_bytes() == f"{cond}:{r}".encode()
    meta = json.loads((vdir / "metadata.json").read_text())
    assert meta == {"replicates": 2, "id": exp.id, "name": "exp"}
    assert json.loads((vdir / "baseline" / "results.json").read_text()) == {
        "metrics": {"wrote": [1, 1], "value": [1, 1]}
    }
    assert json.loads((vdir / "t" / "results.json").read_text())["metrics"]["value"] == [5, 5]
    assert (vdir / "baseline" / ".crystallize_complete").exists()
    assert (vdir / "t" / ".crystallize_complete").exists()
    assert json.loads((vdir / "_manifest.json").read_text()) == {"out.txt": "WriteArtifactStep"}
    assert result.artifacts == {
        "out.txt": {
            "baseline": (vdir / "replicate_0/baseline/WriteArtifactStep/out.txt").resolve(),
            "t": (vdir / "replicate_0/t/WriteArtifactStep/out.txt").resolve(),
        }
    }


def test_unnamed_experiment_uses_its_id(tmp_path: Path) -> None:
    exp = _experiment(tmp_path, name=None)
    exp.run()
    assert exp.id is not None
    assert (tmp_path / exp.id / "v0" / "metadata.json").exists()


def test_versioned_runs_increment_and_unversioned_reuse_v0(tmp_path: Path) -> None:
    exp = _experiment(tmp_path / "v", versioned=True)
    for _ in range(3):
        exp.run()
    assert sorted(p.name for p in (tmp_path / "v" / "exp").iterdir()) == ["v0", "v1", "v2"]
    flat = _experiment(tmp_path / "u")
    flat.run()
    flat.run()
    assert [p.name for p in (tmp_path / "u" / "exp").iterdir()] == ["v0"]


def test_load_metrics_helpers(tmp_path: Path) -> None:
    exp = _experiment(tmp_path, versioned=True)
    exp.run(replicates=2)
    exp.run(treatments=[Treatment("u", {"delta": 9})])
    version, baseline, treatments = load_metrics(tmp_path / "exp")
    assert (
        version == 1
        and baseline["value"] == [1]
        and treatments == {"u": {"value": [9], "wrote": [1]}}
    )
    latest, newest_baseline, everything = load_all_metrics(tmp_path / "exp")
    assert latest == 1 and newest_baseline["value"] == [1]
    assert everything["t"] == (0, {"wrote": [1, 1], "value": [5, 5]})
    assert everything["u"][0] == 1
    assert load_all_metrics(tmp_path / "exp", version=0)[2] == {"t": everything["t"]}
    assert load_metrics(tmp_path / "nothing") == (-1, {}, {})


def test_artifacts_written_in_process_workers_come_back(tmp_path: Path) -> None:
    exp = _experiment(tmp_path, plugins=[ParallelExecution(max_workers=2, executor_type="process")])
    result = exp.run(replicates=2)
    vdir = tmp_path / "exp" / "v0"
    assert json.loads((vdir / "_manifest.json").read_text()) == {"out.txt": "WriteArtifactStep"}
    assert (
        result.artifacts["out.txt"]["t"]
        == (vdir / "replicate_0/t/WriteArtifactStep/out.txt").resolve()
    )
    assert result.artifacts["out.txt"]["t"].read_bytes() == b"t:0"
    assert (vdir / "replicate_1/baseline/WriteArtifactStep/out.txt").read_bytes() == b"baseline:1"


# --- Artifact as output and input ---------------------------------------------------------------
OUT = Artifact("numbers.txt")


@pipeline_step()
def write_numbers(data: int, ctx: FrozenContext, out: Artifact = OUT) -> int:
    out.write(f"{ctx['condition']}-{ctx['replicate']}")
    return data


@pipeline_step()
def read_input(data: bytes, ctx: FrozenContext) -> Any:
    return data, {"text": data.decode()}


def test_artifact_round_trip_between_experiments(tmp_path: Path) -> None:
    producer = Experiment(
        datasource=ConstantSource(0),
        pipeline=Pipeline([write_numbers()]),
        plugins=[SeedPlugin(seed=0), ArtifactPlugin(root_dir=str(tmp_path))],
        name="producer",
        outputs=[OUT],
        treatments=[Treatment("t", {})],
    )
    producer.run(replicates=2)
    consumer = Experiment(
        datasource=OUT,
        pipeline=Pipeline([read_input()]),
        plugins=[SeedPlugin(seed=0), ArtifactPlugin(root_dir=str(tmp_path))],
        name="consumer",
        treatments=[Treatment("t", {}), Treatment("other", {})],
    )
    result = consumer.run(replicates=3)
    assert result.metrics.baseline.metrics["text"] == ["baseline-0", "baseline-1", "baseline-0"]
    assert result.metrics.treatments["t"].metrics["text"] == ["t-0", "t-1", "t-0"]
    # a condition the producer never ran falls back to baseline
    assert result.metrics.treatments["other"].metrics["text"][0] == "baseline-0"


# --- 17. resume ----------------------------------------------------------------------------------
class CountingStep(PipelineStep):
    calls = 0

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        type(self).calls += 1
        return data + ctx.get("delta", 1), {"value": data + ctx.get("delta", 1)}

    @property
    def params(self) -> dict[str, Any]:
        return {}


def test_resume_skips_completed_conditions(tmp_path: Path) -> None:
    CountingStep.calls = 0
    first = _experiment(tmp_path, steps=[CountingStep()]).run(replicates=2)
    assert CountingStep.calls == 4
    CountingStep.calls = 0
    again = _experiment(tmp_path, steps=[CountingStep()])
    resumed = again.run(replicates=2, strategy="resume")
    assert CountingStep.calls == 0
    assert resumed.metrics.baseline.metrics == first.metrics.baseline.metrics
    assert resumed.metrics.treatments["t"].metrics == {"value": [5, 5]}
    assert resumed.digest == first.digest


def test_resume_runs_only_missing_conditions_and_merges(tmp_path: Path) -> None:
    CountingStep.calls = 0
    _experiment(tmp_path, steps=[CountingStep()]).run(replicates=2)
    CountingStep.calls = 0
    exp = _experiment(
        tmp_path,
        steps=[CountingStep()],
        treatments=[*TREATMENTS, Treatment("new", {"delta": 7})],
    )
    exp.strategy = "resume"
    result = exp.run(replicates=2)
    assert CountingStep.calls == 2  # only the new treatment's two cells ran
    assert result.metrics.baseline.metrics == {"value": [1, 1]}
    assert result.metrics.treatments["t"].metrics == {"value": [5, 5]}
    assert result.metrics.treatments["new"].metrics == {"value": [7, 7]}
    vdir = tmp_path / "exp" / "v0"
    assert json.loads((vdir / "new" / "results.json").read_text()) == {"metrics": {"value": [7, 7]}}


def test_resume_needs_the_marker(tmp_path: Path) -> None:
    CountingStep.calls = 0
    _experiment(tmp_path, steps=[CountingStep()]).run()
    (tmp_path / "exp" / "v0" / "t" / ".crystallize_complete").unlink()
    CountingStep.calls = 0
    result = _experiment(tmp_path, steps=[CountingStep()]).run(strategy="resume")
    assert CountingStep.calls == 1
    assert result.metrics.treatments["t"].metrics == {"value": [5]}


def test_rerun_is_the_default(tmp_path: Path) -> None:
    CountingStep.calls = 0
    exp = _experiment(tmp_path, steps=[CountingStep()])
    exp.run()
    exp.run()
    assert Experiment.strategy == "rerun"
    assert CountingStep.calls == 4


@pytest.mark.parametrize("retention", [1, 2])
def test_versioned_pruning_keeps_results(tmp_path: Path, retention: int) -> None:
    exp = Experiment(
        datasource=ConstantSource(0),
        pipeline=Pipeline([WriteArtifactStep()]),
        plugins=[
            SeedPlugin(seed=0),
            ArtifactPlugin(root_dir=str(tmp_path), versioned=True, artifact_retention=retention),
        ],
        name="p",
    )
    for _ in range(3):
        exp.run()
    for v in range(3):
        vdir = tmp_path / "p" / f"v{v}"
        assert (vdir / "baseline" / "results.json").exists()
        art = vdir / "replicate_0" / "baseline" / "WriteArtifactStep" / "out.txt"
        assert art.exists() == (v >= 3 - retention)


@pipeline_step()
def scaled_note(data: int, ctx: FrozenContext, k: int = 1, out: Artifact = OUT) -> Any:
    out.write(str(data * k))
    return data, {"v": (data + 1) * k}


def test_process_workers_keep_a_steps_params_that_lead_back_to_the_experiment(
    tmp_path: Path,
) -> None:
    """An explicit param holding an output Artifact leads back (through the Artifact's
    producer) to the experiment and its pipeline: unpickled in a worker, the step still has
    every param."""

    def build(*plugins: Any) -> Experiment:
        return Experiment(
            datasource=ConstantSource(1),
            pipeline=Pipeline([scaled_note(k=10, out=OUT)]),
            plugins=[SeedPlugin(seed=0), ArtifactPlugin(root_dir=str(tmp_path)), *plugins],
            name="noted",
            outputs=[OUT],
            replicates=2,
        )

    serial = build().run()
    assert serial.metrics.baseline.metrics["v"] == [20, 20]
    process = build(ParallelExecution(executor_type="process", max_workers=2)).run()
    assert process.errors == {} and process.digest == serial.digest
