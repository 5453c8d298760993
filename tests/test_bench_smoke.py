"""The local benchmark script runs end to end (a smoke test: timings are not judged)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_local_quick_runs(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "local.py"), "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for word in ("tiny", "cpu", "serial", "process", "process/serial"):
        assert word in out.stdout, out.stdout
    assert not list(tmp_path.iterdir()), "the benchmark left files in the working directory"
