"""A file written for Crystallize 0.27 (it imports ``crystallize``) runs unchanged on real
Celery workers: ``crystallize-dist worker`` aliases ``crystallize`` to ``crystallize_dist``
in its pool processes, and the result is the bytes of the same file importing
crystallize_dist, run serially."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from crystallize_files import write_pair
from workers import Worker, cli_env, run_cli


@pytest.fixture(scope="module")
def broker(redis_server: object) -> Iterator[str]:
    url: str = redis_server.url  # type: ignore[attr-defined]
    redis.Redis.from_url(url).flushall()
    yield url


def test_celery_workers_run_a_crystallize_file_unchanged(broker: str, tmp_path: Path) -> None:
    original, switched = write_pair(tmp_path / "exp")
    serial = subprocess.run(
        [sys.executable, str(switched)],
        cwd=tmp_path,
        env=cli_env(broker),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert serial.returncode == 0, serial.stderr
    worker = Worker(broker, tmp_path, name="crystallize-file", concurrency=2, cwd=tmp_path)
    try:
        worker.wait_ready()
        out = run_cli(
            "submit",
            str(original),
            "--wait",
            "--format",
            "json",
            "--no-progress",
            "--timeout",
            "120",
            broker_url=broker,
            cwd=tmp_path,
        )
    finally:
        worker.stop()
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["errors"] == {}
    assert result["digest"] == serial.stdout.strip()
    hosts = {c["worker"].get("node") for c in result["provenance"]["cells"].values()}
    assert hosts == {f"crystallize-file@{worker.host}"}  # the cells ran on the worker
