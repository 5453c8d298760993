"""ArtifactPlugin: writes artifacts steps log, per-condition results, and supports resume.

The files go where ``model/artifact_files.py`` says (Crystallize's layout). Unlike upstream,
artifacts written inside worker processes come back: each cell's record lists the files it
wrote, and ``after_run`` builds the manifest and ``result.artifacts`` from the records.
(Celery workers also ship each file's bytes through the run store; see
``crystallize_dist/distributed/artifacts.py``.)
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystallize_dist.canonical import dumps, to_jsonable
from crystallize_dist.constants import (
    BASELINE_CONDITION,
    CONDITION_KEY,
    METADATA_FILENAME,
    REPLICATE_KEY,
)
from crystallize_dist.model.artifact_files import (
    COMPLETE_MARKER,
    MANIFEST_FILE,
    RESULTS_FILE,
    versions,
)
from crystallize_dist.model.plugins import BasePlugin, ExperimentLike

if TYPE_CHECKING:
    from crystallize_dist.model.context import FrozenContext
    from crystallize_dist.model.result import Result
    from crystallize_dist.model.step import PipelineStep


def _results_json(metrics: dict[str, list[Any]]) -> str:
    """A condition's results.json: its metrics, which are JSON values already (json's own
    encoder then does the work); odd keys or values are converted leniently first."""
    try:
        return dumps({"metrics": metrics})
    except (TypeError, ValueError):
        return json.dumps({"metrics": to_jsonable(metrics, strict=False)})


def _write(path: Path, payload: bytes) -> None:
    """Write a file of the run's folder (with the built-in ``open``, so a run that cannot
    write its files fails with that OSError)."""
    with open(path, "wb") as fh:
        fh.write(payload)


def _env_default(value: float, default: float, var: str) -> float:
    if value == default and var in os.environ:
        try:
            return float(os.environ[var])
        except ValueError:
            return value
    return value


@dataclass
class ArtifactPlugin(BasePlugin):
    """Writes artifacts and per-condition results under ``root_dir`` (see module doc)."""

    root_dir: str = "./data"
    versioned: bool = False
    artifact_retention: int = 3
    big_file_threshold_mb: int = 10
    version: int = field(default=0, init=False, compare=False)
    experiment_id: str = field(default="", init=False, compare=False)

    def __post_init__(self) -> None:
        self.artifact_retention = int(
            _env_default(self.artifact_retention, 3, "CRYSTALLIZE_ARTIFACT_RETENTION")
        )
        self.big_file_threshold_mb = int(
            _env_default(self.big_file_threshold_mb, 10, "CRYSTALLIZE_BIG_FILE_THRESHOLD_MB")
        )

    def exp_dir(self, experiment: ExperimentLike) -> Path:
        return Path(self.root_dir) / (experiment.name or experiment.id or "experiment")

    def before_run(self, experiment: ExperimentLike) -> None:
        self.exp_dir(experiment).mkdir(parents=True, exist_ok=True)
        self._choose_version(experiment)

    def claim_version(self, experiment: ExperimentLike) -> None:
        """Pick the version folder of a run whose cells run elsewhere (``submit``): the
        next free one when versioned, made now so that runs submitted one after another
        each get their own (nothing is written when not versioned)."""
        self._choose_version(experiment)
        if self.versioned:
            self._vdir().mkdir(parents=True, exist_ok=True)

    def _choose_version(self, experiment: ExperimentLike) -> None:
        self.experiment_id = experiment.name or experiment.id or "experiment"
        if self.versioned:
            existing = versions(self.exp_dir(experiment))
            self.version = existing[-1] + 1 if existing else 0
        else:
            self.version = 0

    def _vdir(self) -> Path:
        return Path(self.root_dir) / self.experiment_id / f"v{self.version}"

    def after_step(
        self, experiment: ExperimentLike, step: PipelineStep, data: Any, ctx: FrozenContext
    ) -> None:
        if not ctx.artifacts._items:  # the common case first: no files this step
            return
        if not self.experiment_id:  # a worker that never saw before_run (e.g. Celery)
            self.experiment_id = experiment.name or experiment.id or "experiment"
        rep = ctx.get(REPLICATE_KEY, 0)
        cond = ctx.get(CONDITION_KEY, BASELINE_CONDITION)
        folder = self._vdir() / f"replicate_{rep}" / cond / type(step).__name__
        folder.mkdir(parents=True, exist_ok=True)
        written = ctx.cell_artifacts
        for name, payload in ctx.artifacts.items():
            path = folder / name
            _write(path, payload)
            if written is not None:
                written.append(
                    {
                        "name": name,
                        "step": type(step).__name__,
                        "path": str(path.resolve()),
                        # where it goes under another machine's root_dir (Celery workers)
                        "relative": path.relative_to(self.root_dir).as_posix(),
                    }
                )
        ctx.artifacts.clear()

    def after_run(self, experiment: ExperimentLike, result: Result) -> None:
        self.write_results(experiment.replicates, experiment.id, experiment.name, result)

    def write_results(
        self, replicates: int, experiment_id: str | None, name: str | None, result: Result
    ) -> None:
        """The run's files in its version folder: metadata, each condition's results and
        completion marker, the artifact manifest (then old versions are pruned)."""
        vdir = self._vdir()
        vdir.mkdir(parents=True, exist_ok=True)
        meta = {"replicates": replicates, "id": experiment_id, "name": name}
        _write(vdir / METADATA_FILENAME, json.dumps(meta).encode())
        conditions = {BASELINE_CONDITION: result.metrics.baseline, **result.metrics.treatments}
        for cond, tm in conditions.items():
            cdir = vdir / cond
            cdir.mkdir(parents=True, exist_ok=True)
            _write(cdir / RESULTS_FILE, _results_json(tm.metrics).encode())
            _write(cdir / COMPLETE_MARKER, b"")
        _write(vdir / MANIFEST_FILE, json.dumps(dict(result.artifact_steps)).encode())
        if self.versioned:
            self._prune(vdir.parent)

    # -- a run whose cells run elsewhere (workers, the --local pool) ---------------------------
    def run_info(self, experiment: ExperimentLike) -> dict[str, Any]:
        """Where a run writes its files, as ``before_run`` chose: kept in a distributed
        run's manifest, for the workers (which never run ``before_run``) and the readers
        of its result."""
        return {
            "root_dir": str(self.root_dir),
            "folder": self.experiment_id or experiment.name or experiment.id or "experiment",
            "version": self.version,
            "versioned": self.versioned,
            "artifact_retention": self.artifact_retention,
            "big_file_threshold_mb": self.big_file_threshold_mb,
            "id": experiment.id,
            "name": experiment.name,
        }

    @classmethod
    def from_run_info(
        cls, info: Mapping[str, Any], base: ArtifactPlugin | None = None
    ) -> ArtifactPlugin:
        """A plugin writing where ``run_info`` says (a copy of ``base`` when given)."""
        plugin = (
            copy.copy(base)
            if base is not None
            else cls(
                root_dir=str(info.get("root_dir", "./data")),
                versioned=bool(info.get("versioned", False)),
                artifact_retention=int(info.get("artifact_retention", 3)),
                big_file_threshold_mb=int(info.get("big_file_threshold_mb", 10)),
            )
        )
        plugin.experiment_id = str(info.get("folder") or "experiment")
        plugin.version = int(info.get("version", 0))
        return plugin

    def _prune(self, exp_dir: Path) -> None:
        if self.artifact_retention <= 0:
            return
        found = versions(exp_dir)
        keep = found[-self.artifact_retention :]
        limit = self.big_file_threshold_mb * 1024 * 1024
        protected = {RESULTS_FILE, MANIFEST_FILE, METADATA_FILENAME, COMPLETE_MARKER}
        for version in found:
            vdir = exp_dir / f"v{version}"
            if version == found[-1]:
                continue
            for path in sorted(vdir.rglob("*"), reverse=True):
                if (
                    path.is_file()
                    and path.name not in protected
                    and (version not in keep or path.stat().st_size > limit)
                ):
                    path.unlink()
                elif path.is_dir() and version not in keep and not any(path.iterdir()):
                    shutil.rmtree(path)

    def completed_conditions(
        self, experiment: ExperimentLike, conditions: Sequence[str]
    ) -> dict[str, dict[str, list[Any]]]:
        """Metrics of the conditions the latest version already finished (for resume)."""
        experiment_id = experiment.name or experiment.id or experiment.assign_id()
        exp_dir = Path(self.root_dir) / experiment_id
        found = versions(exp_dir)
        if not found:
            return {}
        vdir = exp_dir / f"v{found[-1]}"
        done = {}
        for cond in conditions:
            res, marker = vdir / cond / RESULTS_FILE, vdir / cond / COMPLETE_MARKER
            if res.exists() and marker.exists():
                done[cond] = json.loads(res.read_text()).get("metrics", {})
        return done
