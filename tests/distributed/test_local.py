"""The embedded default (--local): a cell that kills its worker process costs retries,
never the run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CRASHING = """
import os
from crystallize_dist import DataSource, Experiment, Pipeline, PipelineStep, SeedPlugin


class Zero(DataSource):
    def fetch(self, ctx):
        return 0.0


class Draw(PipelineStep):
    def __call__(self, data, ctx):
        if ctx.get("replicate") == 5:
            os._exit(3)  # kills the worker process every time
        return data, {"x": float(ctx.rng.random())}


experiment = Experiment(Zero(), Pipeline([Draw()]), plugins=[SeedPlugin(seed=1)], replicates=16)
"""


def test_a_cell_that_kills_its_local_worker_is_recorded_and_the_run_finishes(
    tmp_path: Path,
) -> None:
    (tmp_path / "crashing.py").write_text(CRASHING)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "crystallize_dist",
            "submit",
            "crashing.py",
            "--local",
            "--workers",
            "2",
            "--format",
            "json",
            "--no-progress",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "CRYSTALLIZE_DIST_HOME": str(tmp_path / "home")},
    )
    # the run finished with a failed cell: exit code 3 and one line saying so
    assert out.returncode == 3, out.stderr
    assert "1 of 16 cells failed; the first: baseline_rep_5: WorkerLostError" in out.stderr
    result = json.loads(out.stdout)
    assert list(result["errors"]) == ["baseline_rep_5"]
    assert result["error_details"]["baseline_rep_5"]["type"] == "WorkerLostError"
    assert len(result["metrics"]["baseline"]["x"]) == 15
    assert result["provenance"]["cells"]["baseline:5"]["attempts"] == 4
