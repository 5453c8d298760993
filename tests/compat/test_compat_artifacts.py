"""Artifacts as in Crystallize 0.27: ``artifact_datasource``, reading a producer's files,
loaders that pickle, the artifact log, and runs that cannot write their files."""

from __future__ import annotations

import builtins
import logging
import pickle
from pathlib import Path
from typing import Any

import pytest
from compat_fixtures import ReadNumber, ReplicateSource, WriteFile

from crystallize_dist import (
    Artifact,
    ArtifactPlugin,
    Experiment,
    FrozenContext,
    ParallelExecution,
    Pipeline,
    SeedPlugin,
)
from crystallize_dist.datasources.artifacts import ArtifactRecord, default_loader, default_writer
from crystallize_dist.errors import ArtifactError


def _producer(root: Path, *, versioned: bool = False, replicates: int = 2) -> Experiment:
    return Experiment(
        ReplicateSource(),
        Pipeline([WriteFile()]),
        name="prod",
        plugins=[ArtifactPlugin(root_dir=str(root), versioned=versioned)],
        outputs=[Artifact("out.txt", loader=lambda p: p.read_text())],
        replicates=replicates,
    )


def test_artifact_datasource_gives_the_paths_of_a_steps_files(tmp_path: Path) -> None:
    producer = _producer(tmp_path)
    producer.run()
    source = producer.artifact_datasource(step="WriteFile", name="out.txt")
    assert source.replicates == 2  # from the run's metadata.json
    path = source.fetch(FrozenContext({"replicate": 1}))
    assert isinstance(path, Path) and path.read_text() == "1"
    reader = Experiment(source, Pipeline([ReadNumber()]), name="reader")
    assert reader.run().metrics.baseline.metrics["read"] == [0, 1]  # the producer's count
    with pytest.raises(FileNotFoundError, match="missing for rep 5"):
        source.fetch(FrozenContext({"replicate": 5}))
    missing = producer.artifact_datasource(step="WriteFile", name="nope.txt")
    with pytest.raises(FileNotFoundError):
        missing.fetch(FrozenContext({"replicate": 0}))
    (tmp_path / "prod" / "v0" / "metadata.json").unlink()
    with pytest.raises(FileNotFoundError, match="Metadata missing"):
        producer.artifact_datasource(step="WriteFile", name="out.txt", require_metadata=True)
    with pytest.raises(ArtifactError, match="needs the experiment to have an ArtifactPlugin"):
        _no_plugin().artifact_datasource(step="WriteFile")


def _no_plugin() -> Experiment:
    exp = Experiment(ReplicateSource(), Pipeline([WriteFile()]))
    exp.plugins = []  # as after assigning plugins by hand: no ArtifactPlugin
    return exp


def test_a_fresh_experiment_reads_the_newest_version_on_disk(tmp_path: Path) -> None:
    _producer(tmp_path, versioned=True, replicates=1).run()
    _producer(tmp_path, versioned=True, replicates=3).run()  # v1
    fresh = _producer(tmp_path, versioned=True)
    source = fresh.artifact_datasource(step="WriteFile", name="out.txt")
    assert source.replicates == 3 and "v1" in str(source.fetch(FrozenContext({"replicate": 2})))


def test_artifact_fetch_falls_back_to_the_baseline_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    producer = _producer(tmp_path)
    producer.run()
    out = producer.outputs["out.txt"]
    ctx = FrozenContext({"replicate": 3, "condition": "other"}, logger=logging.getLogger("mine"))
    with caplog.at_level(logging.WARNING, logger="mine"):
        assert out.fetch(ctx) == "1"  # replicate 3 of a 2-replicate producer is its 1
    assert "falling back to 'baseline'" in caplog.text
    assert str(tmp_path / "prod" / "v0" / "replicate_1" / "other") in caplog.text
    never = Artifact("never.txt")
    producer.outputs["never.txt"] = never
    never._producer = producer
    with pytest.raises(FileNotFoundError, match=r"no entry for never\.txt"):
        never.fetch(ctx)
    with pytest.raises(ArtifactError, match="not attached"):
        Artifact("loose").fetch(ctx)
    with pytest.raises(ArtifactError, match="not bound"):
        Artifact("loose").write(b"x")


def test_loaders_and_writers_pickle_even_as_lambdas(tmp_path: Path) -> None:
    scale = 3
    art = Artifact(
        "x.txt", loader=lambda p: len(p.read_text()) * scale, writer=lambda d: str(d).encode()
    )
    clone = pickle.loads(pickle.dumps(art))
    (tmp_path / "x.txt").write_text("hello")
    assert clone.loader(tmp_path / "x.txt") == 15 and clone.writer(7) == b"7"
    plain = pickle.loads(pickle.dumps(Artifact("y")))
    assert plain.loader(tmp_path / "x.txt") == b"hello" and plain.writer("s") == b"s"


def test_a_lambda_loader_travels_to_process_workers(tmp_path: Path) -> None:
    producer = _producer(tmp_path)
    producer.run()
    reader = Experiment(
        producer.outputs["out.txt"],
        Pipeline([ReadNumber()]),
        name="reader",
        plugins=[SeedPlugin(seed=1), ParallelExecution(executor_type="process", max_workers=2)],
        replicates=4,
    )
    result = reader.run()
    assert result.errors == {} and result.metrics.baseline.metrics["read"] == [0, 1, 0, 1]


def test_artifact_log_defaults_and_records() -> None:
    ctx = FrozenContext({})
    ctx.artifacts.add("a.bin", b"1")
    assert list(ctx.artifacts) == [ArtifactRecord("a.bin", b"1")]
    assert default_writer("x") == b"x" and default_writer(b"y") == b"y"
    with pytest.raises(TypeError):
        default_writer(1)
    assert default_loader.__name__ == "default_loader"


def test_a_run_that_cannot_write_its_files_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp = _producer(tmp_path / "arts")
    real_open = builtins.open

    def deny(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "w" in mode and str(tmp_path / "arts") in str(file):
            raise PermissionError(f"no write: {file}")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    with pytest.raises(PermissionError):
        exp.run()
