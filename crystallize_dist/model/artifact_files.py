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


def _metrics_of(path: Path) -> dict[str, Any]:
    """The ``metrics`` of a condition's results.json (``{}`` when the file is missing)."""
    if not path.is_file():
        return {}
    metrics: dict[str, Any] = json.loads(path.read_text()).get("metrics", {})
    return metrics


def _treatment_dirs(vdir: Path) -> list[Path]:
    """A version's condition folders other than the baseline, by name."""
    if not vdir.is_dir():
        return []
    return sorted(
        (p for p in vdir.iterdir() if p.is_dir() and p.name != BASELINE_CONDITION),
        key=lambda p: p.name,
    )


def load_metrics(
    exp_dir: str | Path, version: int | None = None
) -> tuple[int, dict[str, Any], dict[str, dict[str, Any]]]:
    """``(version, baseline metrics, {treatment: metrics})`` of one version under
    ``exp_dir`` (the newest when ``version`` is None); ``(-1, {}, {})`` when there is none.
    Conditions without a results.json are left out."""
    exp_dir = Path(exp_dir)
    if version is None:
        found = versions(exp_dir)
        if not found:
            return -1, {}, {}
        version = found[-1]
    vdir = exp_dir / f"v{version}"
    baseline = _metrics_of(vdir / BASELINE_CONDITION / RESULTS_FILE)
    treatments = {
        t.name: _metrics_of(t / RESULTS_FILE)
        for t in _treatment_dirs(vdir)
        if (t / RESULTS_FILE).is_file()
    }
    return version, baseline, treatments


def load_all_metrics(
    exp_dir: str | Path, version: int | None = None
) -> tuple[int, dict[str, Any], dict[str, tuple[int, dict[str, Any]]]]:
    """``(version, baseline metrics, {treatment: (its version, metrics)})``: the baseline of
    ``version`` (the newest when None) and, for each treatment, the newest version up to
    ``version`` that holds its results; ``(-1, {}, {})`` when nothing is stored."""
    exp_dir = Path(exp_dir)
    found = versions(exp_dir)
    if not found:
        return -1, {}, {}
    latest = found[-1] if version is None else version
    baseline = _metrics_of(exp_dir / f"v{latest}" / BASELINE_CONDITION / RESULTS_FILE)
    treatments: dict[str, tuple[int, dict[str, Any]]] = {}
    for ver in sorted((v for v in found if v <= latest), reverse=True):
        for t in _treatment_dirs(exp_dir / f"v{ver}"):
            if t.name not in treatments and (t / RESULTS_FILE).is_file():
                treatments[t.name] = (ver, _metrics_of(t / RESULTS_FILE))
    return latest, baseline, treatments
