"""The benchmark scripts run end to end (smoke tests: ``--quick`` sizes, timings not judged).

Every benchmark except bench/local.py starts its own redis-server: those tests skip when it
is not installed, and fail when CI=true (tests/redis_server.require_redis_server).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from redis_server import require_redis_server

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, cwd: Path, *args: str, timeout: float = 120) -> str:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--quick", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_bench_local_quick_runs(tmp_path: Path) -> None:
    stdout = _run("local.py", tmp_path, timeout=300)
    for word in ("tiny", "cpu", "serial", "process", "process/serial", "serial/plain loop"):
        assert word in stdout, stdout
    assert "same values: yes" in stdout, stdout
    assert not list(tmp_path.iterdir()), "the benchmark left files in the working directory"


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    require_redis_server()
    return tmp_path / "out"


def test_bench_batching_quick_runs(tmp_path: Path, out_dir: Path) -> None:
    stdout = _run("batching.py", tmp_path, "--out", str(out_dir))
    assert "--cells-per-task auto chose N =" in stdout, stdout
    assert "raw celery" in stdout and "x raw" in stdout, stdout
    assert "target >= 3x" in stdout and ("PASS" in stdout or "MISS" in stdout), stdout
    figures = json.loads((out_dir / "batching.json").read_text())
    assert figures["auto_n"] >= 1 and len(figures["rows"]) == 3
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "chart skipped" in stdout, stdout
    else:
        assert (out_dir / "batching.png").stat().st_size > 0


def test_bench_submit_quick_runs(tmp_path: Path, out_dir: Path) -> None:
    stdout = _run("submit.py", tmp_path, "--out", str(out_dir))
    for word in ("submit", "enqueue", "apply_async", "target >= 20,000", "stock celery worker"):
        assert word in stdout, stdout
    assert json.loads((out_dir / "submit.json").read_text())["stock_worker"]["ok"], stdout
    assert not list(p for p in tmp_path.iterdir() if p != out_dir), "files left behind"


def test_bench_scale_quick_runs(tmp_path: Path, out_dir: Path) -> None:
    stdout = _run("scale.py", tmp_path, "--out", str(out_dir))
    for word in ("submit", "run_status", "load_result", "peak RSS", "tracemalloc", "--format json"):
        assert word in stdout, stdout
    for word in ("Redis per cell", "Redis used memory", "its peak RSS", "target < 20 s"):
        assert word in stdout, stdout
    figures = json.loads((out_dir / "scale.json").read_text())
    assert figures["cells"] == 2000
    assert figures["figures"]["redis_bytes_per_cell"] > 0 < figures["figures"]["cli_rss_mb"]


def test_bench_throughput_quick_runs(tmp_path: Path, out_dir: Path) -> None:
    """The three sides run the same cells with the same digest (the script checks it)."""
    stdout = _run("throughput.py", tmp_path, "--out", str(out_dir), timeout=300)
    for word in ("inprocess", "local", "celery", "target >= 0.4x", "target >= 0.5x"):
        assert word in stdout, stdout
    figures = json.loads((out_dir / "throughput.json").read_text())
    assert set(figures["verdicts"]) == {"celery", "local"}
    assert not list(p for p in tmp_path.iterdir() if p != out_dir), "files left behind"


def test_bench_cpu_quick_runs(tmp_path: Path, out_dir: Path) -> None:
    stdout = _run("cpu.py", tmp_path, "--out", str(out_dir))
    for word in ("serial", "distributed", "distributed / serial", "machine ceiling"):
        assert word in stdout, stdout
    assert not list(p for p in tmp_path.iterdir() if p != out_dir), "files left behind"


def test_bench_instructions_quick_runs(tmp_path: Path) -> None:
    """The callgrind twin of local.py's serial / plain-loop line (needs valgrind to measure;
    without it the script says so and measures nothing)."""
    stdout = _run("instructions.py", tmp_path, timeout=300)
    if shutil.which("valgrind") is None:
        assert "valgrind is not on PATH" in stdout, stdout
        return
    assert "serial/plain loop by instructions =" in stdout, stdout
    ratio = float(stdout.split("by instructions =")[1].split("x")[0])
    assert 0.1 < ratio < 2, stdout  # a count, not a crash or a zero


def test_bench_signing_quick_runs(tmp_path: Path, out_dir: Path) -> None:
    stdout = _run("signing.py", tmp_path, "--out", str(out_dir))
    for word in ("unsigned", "signed", "signing", "verifying", "load_result", "load average"):
        assert word in stdout, stdout
    assert "target < 1.05" in stdout and ("PASS" in stdout or "MISS" in stdout), stdout
    figures = json.loads((out_dir / "signing.json").read_text())
    assert len(figures["signed_per_cell_s"]) == len(figures["unsigned_per_cell_s"]) == 2
    assert 0 < figures["micro"]["sign_us"] < 1000
    assert not list(p for p in tmp_path.iterdir() if p != out_dir), "files left behind"
