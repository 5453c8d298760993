"""Every example runs, gives the same digest serially and on two processes, and its script
exits 0. Examples are discovered, so a new one is tested without editing this file:

- ``examples/*.py`` are experiment files (module attribute ``experiment``) and scripts;
- ``examples/*/config.yaml`` marks a config-folder experiment;
- ``examples/*/*.py`` holding a ``__main__`` block are scripts too.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from crystallize_dist import Experiment, ParallelExecution, Result, load_experiment

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SEED = 20240611
SERIAL_BUDGET_S = 3.0


def _experiment_refs() -> list[Path]:
    files = sorted(EXAMPLES.glob("*.py"))
    folders = sorted(p.parent for p in EXAMPLES.glob("*/config.yaml"))
    return [*files, *folders]


def _scripts() -> list[Path]:
    nested = [
        p for p in sorted(EXAMPLES.glob("*/*.py")) if '__name__ == "__main__"' in p.read_text()
    ]
    return [*sorted(EXAMPLES.glob("*.py")), *nested]


def _id(path: Path) -> str:
    return str(path.relative_to(EXAMPLES))


def _run(exp: Experiment, *extra: ParallelExecution) -> Result:
    """Run with an explicit seed (config folders carry none) and temporary extra plugins,
    leaving the (module-level, shared) experiment as it was."""
    exp.plugins.extend(extra)
    try:
        return exp.run(seed=SEED)
    finally:
        for plugin in extra:
            exp.plugins.remove(plugin)


def test_examples_are_discovered() -> None:
    names = {_id(p) for p in _experiment_refs()}
    assert {"quickstart.py", "train_eval.py", "folder_experiment"} <= names
    assert "folder_experiment/main.py" in {_id(p) for p in _scripts()}


@pytest.mark.parametrize("ref", _experiment_refs(), ids=_id)
def test_example_serial_and_process_digests_match(
    ref: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # artifacts land in tmp_path/data
    exp, _ = load_experiment(str(ref))
    started = time.perf_counter()
    serial = _run(exp)
    elapsed = time.perf_counter() - started
    process = _run(exp, ParallelExecution(executor_type="process", max_workers=2))

    assert not serial.errors, serial.errors
    assert serial.metrics.baseline.metrics, "the example records no metrics"
    assert serial.digest == process.digest
    assert serial.metrics == process.metrics
    assert serial.provenance["seeds"] == process.provenance["seeds"]
    assert elapsed < SERIAL_BUDGET_S, f"{_id(ref)} took {elapsed:.2f}s serially"


@pytest.mark.parametrize("script", _scripts(), ids=_id)
def test_example_script_exits_zero(script: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "digest" in out.stdout
