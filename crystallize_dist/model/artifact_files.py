"""Where ArtifactPlugin keeps a run's files, and reading stored metrics back.

Layout (Crystallize's)::

    <root>/<experiment name or id>/v<N>/
        metadata.json                     {"replicates", "id", "name"}
        _manifest.json                    {artifact name: step class}
        <condition>/results.json          {"metrics": {...}}
        <condition>/.crystallize_complete
        replicate_<r>/<condition>/<StepClass>/<artifact name>
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crystallize_dist.constants import BASELINE_CONDITION

RESULTS_FILE = "results.json"
COMPLETE_MARKER = ".crystallize_complete"
MANIFEST_FILE = "_manifest.json"


def versions(exp_dir: Path) -> list[int]:
    """The version numbers ``N`` of the ``v<N>`` folders under ``exp_dir``, ascending."""
    if not exp_dir.is_dir():
        return []
    return sorted(
        int(p.name[1:])
        for p in exp_dir.iterdir()
        if p.is_dir() and p.name.startswith("v") and p.name[1:].isdigit()
    )


def load_metrics(
    exp_dir: str | Path, version: int | None = None
) -> tuple[int, dict[str, Any], dict[str, dict[str, Any]]]:
    """``(version, baseline metrics, {treatment: metrics})`` stored under ``exp_dir``;
    version is -1 when nothing is stored."""
    exp_dir = Path(exp_dir)
    found = versions(exp_dir)
    if version is None:
        if not found:
            return -1, {}, {}
        version = found[-1]
    vdir = exp_dir / f"v{version}"
    baseline: dict[str, Any] = {}
    treatments: dict[str, dict[str, Any]] = {}
    if not vdir.is_dir():
        return -1, {}, {}
    for cond_dir in sorted(p for p in vdir.iterdir() if p.is_dir()):
        res = cond_dir / RESULTS_FILE
        if not res.exists():
            continue
        metrics = json.loads(res.read_text()).get("metrics", {})
        if cond_dir.name == BASELINE_CONDITION:
            baseline = metrics
        else:
            treatments[cond_dir.name] = metrics
    return version, baseline, treatments


def load_all_metrics(exp_dir: str | Path) -> dict[str, tuple[int, dict[str, Any]]]:
    """For each condition, the newest version that holds it: ``{cond: (version, metrics)}``."""
    out: dict[str, tuple[int, dict[str, Any]]] = {}
    for version in reversed(versions(Path(exp_dir))):
        _, baseline, treatments = load_metrics(exp_dir, version)
        for cond, metrics in [(BASELINE_CONDITION, baseline), *treatments.items()]:
            if metrics and cond not in out:
                out[cond] = (version, metrics)
    return out
