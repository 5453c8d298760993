"""Shipping artifact files through the run store (dist/artifacts.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from crystallize_dist import load_experiment
from crystallize_dist.cli import main
from crystallize_dist.distributed.artifacts import fetch, ship
from crystallize_dist.distributed.store import SQLiteStore
from crystallize_dist.model.artifact_files import load_metrics


def _record(path: Path, relative: str) -> dict[str, object]:
    return {
        "artifacts": [{"name": path.name, "step": "S", "path": str(path), "relative": relative}]
    }


def test_ship_then_fetch_writes_the_bytes_under_the_readers_root(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    worker_file = tmp_path / "worker" / "data" / "exp" / "v0" / "a.bin"
    worker_file.parent.mkdir(parents=True)
    worker_file.write_bytes(b"\x00payload")
    rec = _record(worker_file, "exp/v0/a.bin")
    ship(store, rec, limit=1000)
    worker_file.unlink()  # the reader is another machine
    (out,) = fetch(store, [rec], tmp_path / "reader")
    path = Path(out["artifacts"][0]["path"])  # type: ignore[index]
    assert path == (tmp_path / "reader" / "exp" / "v0" / "a.bin").resolve()
    assert path.read_bytes() == b"\x00payload"


def test_a_file_over_the_limit_stays_and_a_path_outside_the_root_is_refused(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 100)
    rec = _record(big, "big.bin")
    ship(store, rec, limit=10)
    art = rec["artifacts"][0]  # type: ignore[index]
    assert art["too_big"] == 100 and "sha256" not in art
    small = tmp_path / "small.bin"
    small.write_bytes(b"ok")
    evil = _record(small, "../../escaped.bin")
    ship(store, evil, limit=10)
    list(fetch(store, [evil], tmp_path / "reader"))
    assert not (tmp_path.parent / "escaped.bin").exists()
    assert evil["artifacts"][0]["path"] == str(small)  # type: ignore[index]


VERSIONED = """
from crystallize_dist import (ArtifactPlugin, DataSource, Experiment, Pipeline, PipelineStep,
                              SeedPlugin)


class Draw(DataSource):
    def fetch(self, ctx):
        return float(ctx.rng.random())


class Note(PipelineStep):
    def __call__(self, data, ctx):
        ctx.artifacts.add("note.txt", repr(data).encode())
        return data, {"x": data}


experiment = Experiment(Draw(), Pipeline([Note()]), replicates=3, name="notes",
                        plugins=[ArtifactPlugin(root_dir="data", versioned=True),
                                 SeedPlugin(seed=4)])
"""


def test_submitted_runs_take_the_next_version_and_leave_the_run_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A versioned ArtifactPlugin: every run - in-process or submitted - writes a version
    folder of its own (submitted ones never overwrite an earlier one), with the metadata,
    results and markers that resume, load_metrics and Artifact datasources read."""
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "notes_versioned.py"
    src.write_text(VERSIONED)
    exp, _ = load_experiment(str(src))
    first = exp.run().digest
    for workers in ("1", "2"):
        out = CliRunner().invoke(
            main,
            [
                "submit",
                str(src),
                "--local",
                "--workers",
                workers,
                "--no-progress",
                "--format",
                "json",
            ],
            env={"CRYSTALLIZE_DIST_HOME": str(tmp_path / "home")},
        )
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout)["digest"] == first
    root = tmp_path / "data" / "notes"
    assert sorted(p.name for p in root.iterdir()) == ["v0", "v1", "v2"]
    for v in ("v1", "v2"):
        assert (root / v / "replicate_2" / "baseline" / "Note" / "note.txt").exists()
        assert json.loads((root / v / "metadata.json").read_text())["replicates"] == 3
        assert (root / v / "baseline" / ".crystallize_complete").exists()
        assert json.loads((root / v / "baseline" / "results.json").read_text()) == json.loads(
            (root / "v0" / "baseline" / "results.json").read_text()
        )
    version, baseline, _ = load_metrics(root)
    assert version == 2 and baseline["x"] == exp.run().metrics.baseline.metrics["x"]
