"""What a hostile writer with access to Redis does, for tests/integration/test_hostile_writer.py:
read and rewrite the keys the run store writes (constants.py), forge whole runs, and plant
code that says whether it ran.

Planted code writes a file into ``$HOSTILE_MARKERS`` when it is imported and another when
its ``experiment`` function is called, so a test proves that nothing planted ran by finding
that folder empty.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import redis

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.publisher import enqueue
from crystallize_dist.engine.plan import Cell

MARKERS_ENV = "HOSTILE_MARKERS"
SECRET = "hostile-suite-secret"

#: the experiment the suite submits: artifacts, a hypothesis, one treatment
EXPERIMENT = '''"""A small experiment with an artifact and a hypothesis."""

import os
from pathlib import Path

from crystallize_dist import (ArtifactPlugin, DataSource, Experiment, Hypothesis, Pipeline,
                              PipelineStep, SeedPlugin, Treatment, verifier)


class Draw(DataSource):
    def fetch(self, ctx):
        return float(ctx.rng.random())


class Note(PipelineStep):
    def __call__(self, data, ctx):
        ctx.artifacts.add("note.txt", repr(data).encode())
        return data, {"x": data + ctx.get("shift", 0.0)}


@verifier
def gap(baseline_samples, treatment_samples):
    mean = lambda xs: sum(xs) / len(xs)
    return {"gap": mean(treatment_samples["x"]) - mean(baseline_samples["x"])}


experiment = Experiment(
    Draw(), Pipeline([Note()]), treatments=[Treatment("up", {"shift": 1.0})],
    hypotheses=[Hypothesis(gap(), metrics="x", ranker=lambda r: -r["gap"], name="gap")],
    plugins=[ArtifactPlugin(root_dir="data"), SeedPlugin(seed=7)], replicates=3,
    name="hostile",
)


def sidecar():
    """Not the experiment: an attribute switched to it would call it."""
    Path(os.environ["HOSTILE_MARKERS"], "exp.sidecar called").write_text("it ran")
'''

#: code an attacker plants: it says when it is imported and when it is called
PLANTED = """import os
from pathlib import Path

Path(os.environ["{env}"], "{name} imported").write_text("planted code ran")


def experiment():
    Path(os.environ["{env}"], "{name} called").write_text("planted code ran")
"""


def planted(folder: Path, name: str) -> Path:
    """``folder/<name>.py``: planted code (see the module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(PLANTED.format(env=MARKERS_ENV, name=name))
    return path


def write_experiment(folder: Path) -> Path:
    """The suite's experiment in ``folder``, with a planted neighbour ``decoy.py`` that the
    code bundle carries too (an entry point switched to it would run it)."""
    folder.mkdir(parents=True, exist_ok=True)
    planted(folder, "decoy")
    path = folder / "exp.py"
    path.write_text(EXPERIMENT)
    return path


class Store:
    """A raw client of the run store's Redis, as the attacker has it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.r = redis.Redis.from_url(url)

    def manifest(self, run_id: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.r.get(C.key_manifest(run_id)) or b"null")
        return data

    def put_manifest(self, run_id: str, manifest: dict[str, Any]) -> None:
        self.r.set(C.key_manifest(run_id), json.dumps(manifest))

    def forge_run(self, run_id: str, manifest: dict[str, Any]) -> None:
        """A run the attacker made up: manifest, state and an entry in the runs index."""
        self.put_manifest(run_id, manifest)
        self.r.zadd(C.KEY_RUNS, {run_id: time.time()})
        self.r.hset(C.key_state(run_id), "created", json.dumps(time.time()))

    def record(self, run_id: str, key: str) -> bytes:
        raw = self.r.hget(C.key_records(run_id), key)
        assert raw is not None, f"{run_id} has no record {key}"
        return bytes(raw)

    def put_record(self, run_id: str, key: str, raw: bytes | str) -> None:
        self.r.hset(C.key_records(run_id), key, raw)

    def put_blob(self, key: str, data: bytes) -> None:
        self.r.set(C.key_bundle(key), data)

    def close(self) -> None:
        self.r.close()


def send(url: str, queue: str, run_id: str, cells: list[tuple[str, int, int]]) -> None:
    """Task messages for ``cells`` of ``run_id`` into ``queue`` (what a submit would send)."""
    settings = Settings.from_env({}, broker_url=url, queue=queue)
    enqueue(settings, run_id, [Cell(c, r, s) for c, r, s in cells], 1)


def zipped(files: dict[str, str]) -> tuple[bytes, str]:
    """A code bundle of ``files`` and its sha256 (its store address)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in sorted(files.items()):
            zf.writestr(name, text)
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def forged_manifest(
    run_id: str, target: str, *, kind: str = "file", **extra: Any
) -> dict[str, Any]:
    """A manifest an attacker writes from scratch: one baseline cell, seed 1, no bundle
    and no signature unless ``extra`` adds them."""
    manifest: dict[str, Any] = {
        "version": 1,
        "run_id": run_id,
        "created": time.time(),
        "experiment": {
            "ref": {"kind": kind, "target": target, "attr": "experiment"},
            "text": target,
            "name": "forged",
            "fingerprint": "0" * 64,
            "hypotheses": ["gap"],
            "artifact_root": "/",
        },
        "plan": {"master_seed": 1, "replicates": 1, "treatments": [], "auto_seed": False},
        "conditions": ["baseline"],
        "n_cells": 1,
        "seeds": [1],
        "options": {"queue": "forged"},
        "submitter": {},
    }
    for key, value in extra.items():
        manifest[key] = value
    return manifest
