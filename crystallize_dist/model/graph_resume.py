"""Resuming a node of an ExperimentGraph: skip an experiment whose last run is complete.

With ``strategy="resume"`` a node whose newest version folder has every condition's
completion marker, and holds every artifact its readers need, is not run again: its
Result is read back from that folder (metrics, hypotheses verified again, artifact paths).
A node with no earlier run, or whose readers need an artifact it did not write, runs
afresh; one that finished only some conditions resumes them (``Experiment.run``'s resume).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.model.artifact_files import (
    COMPLETE_MARKER,
    MANIFEST_FILE,
    RESULTS_FILE,
    versions,
)
from crystallize_dist.model.artifacts import ArtifactPlugin
from crystallize_dist.model.hypothesis import verify_hypotheses
from crystallize_dist.model.result import ExperimentMetrics, Result, TreatmentMetrics

if TYPE_CHECKING:
    from crystallize_dist.model.experiment import Experiment
    from crystallize_dist.model.treatment import Treatment

_log = logging.getLogger("crystallize")
_REPLICATE_DIR = re.compile(r"replicate_(\d+)")


def _replicate_dirs(vdir: Path) -> list[Path]:
    """A version's ``replicate_<r>`` folders, by replicate."""
    found = [
        (int(m.group(1)), p) for p in vdir.iterdir() if (m := _REPLICATE_DIR.fullmatch(p.name))
    ]
    return [p for _, p in sorted(found)]


def _artifact_paths(vdir: Path, conditions: Sequence[str]) -> dict[str, dict[str, Path]]:
    """``{artifact: {condition: path}}`` of the files the manifest lists (the first
    replicate that holds one, as a run's Result says)."""
    manifest_path = vdir / MANIFEST_FILE
    if not manifest_path.is_file():
        return {}
    out: dict[str, dict[str, Path]] = {}
    reps = _replicate_dirs(vdir)
    for name, step in json.loads(manifest_path.read_text()).items():
        by_cond = {}
        for cond in conditions:
            found = next(
                (r / cond / step / name for r in reps if (r / cond / step / name).exists()), None
            )
            if found is not None:
                by_cond[cond] = found
        if by_cond:
            out[name] = by_cond
    return out


def _stored_result(exp: Experiment, vdir: Path, treatments: Sequence[Treatment]) -> Result:
    """The Result of ``exp``'s complete run stored in ``vdir``, for the conditions a run
    with ``treatments`` would have (what running it again would give)."""
    conditions = [BASELINE_CONDITION, *(t.name for t in treatments)]
    metrics: dict[str, dict[str, list[Any]]] = {}
    for cond in conditions:
        path = vdir / cond / RESULTS_FILE
        if path.is_file():
            metrics[cond] = json.loads(path.read_text()).get("metrics", {})
    baseline = metrics.pop(BASELINE_CONDITION, {})
    stored = {name: TreatmentMetrics(m) for name, m in metrics.items()}
    hypotheses = verify_hypotheses(exp.hypotheses, baseline, stored)
    result = Result(
        ExperimentMetrics(TreatmentMetrics(baseline), stored, hypotheses),
        artifacts=_artifact_paths(vdir, conditions),
        provenance={"resumed_from": str(vdir), "pipeline_signature": exp.pipeline.signature()},
    )
    return result


def _needs(reader: Experiment) -> set[str]:
    """The artifact names a reading experiment's datasource needs."""
    return {art.name for art in getattr(reader.datasource, "required_outputs", [])}


def plan_node(
    exp: Experiment, treatments: Sequence[Treatment], readers: Sequence[Experiment], strategy: str
) -> tuple[Result | None, str]:
    """How a graph runs node ``exp`` with ``treatments``: its stored Result when resuming
    finds it complete (then it does not run), else None and the strategy its run takes."""
    plugin = exp.get_plugin(ArtifactPlugin)
    if strategy != "resume" or plugin is None:
        return None, strategy
    exp_dir = Path(plugin.root_dir) / (exp.name or exp.id or exp.assign_id())
    found = versions(exp_dir)
    if not found:
        _log.warning("No previous run for %s", exp.name)
        return None, "rerun"
    vdir = exp_dir / f"v{found[-1]}"
    conditions = [BASELINE_CONDITION, *(t.name for t in treatments)]
    if not all((vdir / cond / COMPLETE_MARKER).exists() for cond in conditions):
        return None, "resume"  # some conditions finished: the run resumes the others
    for reader in readers:
        for name in _needs(reader) & set(exp.outputs):
            if not any(vdir.rglob(name)):
                return None, "rerun"  # a reader needs a file this run did not write
    return _stored_result(exp, vdir, treatments), strategy
