"""Results people read, on real Celery workers and a real redis-server: paired comparisons
and the long format give the same numbers as in-process, the report page of a worker run
in a real Chromium, ``status --watch`` and ``workers`` on a live run, and the determinism
canary re-running cells in another pool process of one worker, and on another worker."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from browser import Browser
from compare_experiment import failing
from report_checks import check_page
from workers import ROOT, Worker, cli_env, run_cli

TESTS = ROOT / "tests"
COMPARE = str(TESTS / "compare_experiment.py")
CANARY = str(TESTS / "canary_experiment.py")


@pytest.fixture(scope="module")
def broker(redis_server: object) -> Iterator[str]:
    url: str = redis_server.url  # type: ignore[attr-defined]
    redis.Redis.from_url(url).flushall()
    yield url


@pytest.fixture(scope="module")
def pair(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """One worker with 2 prefork processes, for the module."""
    logs = tmp_path_factory.mktemp("logs")
    worker = Worker(broker, logs, name="pair", concurrency=2, cwd=logs).wait_ready()
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    chrome = Browser(tmp_path_factory.mktemp("chromium"))
    try:
        yield chrome
    finally:
        chrome.close()


def cli(broker: str, cwd: Path, *args: str, code: int = 0) -> str:
    out = run_cli(*args, broker_url=broker, cwd=cwd)
    assert out.returncode == code, out.stdout + out.stderr
    return out.stdout + ("\n" + out.stderr if code else "")


def test_compare_rows_and_report_of_a_worker_run(
    broker: str, pair: Worker, browser: Browser, tmp_path: Path
) -> None:
    out = run_cli("submit", f"{COMPARE}:failing", "--wait", "--no-progress", "--timeout",
                  "120", broker_url=broker, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 3, out.stderr
    run_id = out.stdout.splitlines()[0]
    compared = cli(broker, tmp_path, "result", run_id, "--compare", "--format", "json")
    here = failing.run()
    assert compared == json.dumps([c.to_dict() for c in here.comparisons()], indent=2) + "\n"
    rows = list(csv.DictReader(io.StringIO(cli(broker, tmp_path, "result", run_id, "--format",
                                                "rows"))))  # fmt: skip
    valued = [r for r in rows if r["status"] == "ok"]
    assert len(valued) == len(here.to_pandas()) - 2  # in-process: no rows for failed cells
    assert {r["worker"] for r in valued} == {f"pair@{pair.host}"}
    assert {(r["condition"], r["replicate"], r["status"]) for r in rows if not r["metric"]} == {
        ("up", "2", "error"), ("baseline", "5", "error"), ("up", "5", "dropped"),
        ("same", "5", "dropped"),
    }  # fmt: skip
    report = tmp_path / "report.html"
    cli(broker, tmp_path, "report", run_id, "-o", str(report))
    page = check_page(browser, report)
    assert (
        page.digest
        == json.loads(cli(broker, tmp_path, "result", run_id, "--format", "json"))["digest"]
    )
    assert page.charts == ["forest:score", "distribution:loss", "distribution:score", "timeline"]
    assert "on 2 worker processes" in page.text
    workers_row = next(line for line in page.text.splitlines() if line.startswith("pair@"))
    assert "prefork" in workers_row and "alive" in workers_row and "celery" in workers_row


def test_watch_and_workers_on_a_live_run(broker: str, pair: Worker, tmp_path: Path) -> None:
    run_id = cli(broker, tmp_path, "submit", f"{CANARY}:slow").splitlines()[0]
    deadline = time.time() + 30
    listed: list[dict[str, object]] = []
    while time.time() < deadline:  # its cells are in flight within a heartbeat or two
        listed = json.loads(cli(broker, tmp_path, "workers", "--json"))
        if any(run_id in (n["runs"] or {}) for n in listed):  # type: ignore[operator]
            break
        time.sleep(0.5)
    node = next(n for n in listed if n["node"] == f"pair@{pair.host}")
    assert node["pool"] == "prefork" and node["concurrency"] == 2 and node["state"] == "alive"
    assert node["pid"] == pair.pid and node["host"] == pair.host
    assert run_id in node["runs"]  # type: ignore[operator]
    assert set(node["versions"]) >= {"python", "numpy", "crystallize_dist"}  # type: ignore[arg-type]
    table = cli(broker, tmp_path, "workers")
    assert f"pair@{pair.host}" in table and "prefork" in table and "alive" in table
    watched = run_cli("status", run_id, "--watch", broker_url=broker, cwd=tmp_path, timeout=120)
    assert watched.returncode == 0, watched.stderr
    assert f"run {run_id} (canary): finished" in watched.stdout
    assert "total" in watched.stdout and f"pair@{pair.host}" in watched.stdout


def test_watch_stops_on_a_timeout_and_on_ctrl_c(broker: str, tmp_path: Path) -> None:
    """A run that no worker takes (its queue has none): ``--watch --timeout`` exits 1 as
    ``wait`` does, and Ctrl-C exits 130 and says the run goes on."""
    env = {"CRYSTALLIZE_DIST_QUEUE": "q-nobody"}
    run_id = run_cli("submit", f"{CANARY}:slow", broker_url=broker, cwd=tmp_path,
                     env=env).stdout.splitlines()[0]  # fmt: skip
    out = run_cli("status", run_id, "--watch", "--timeout", "2", broker_url=broker,
                  cwd=tmp_path, env=env)  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert f"run {run_id} (canary): running" in out.stdout and "Traceback" not in out.stderr

    def terminal_sigint() -> None:  # as in a terminal (a background job ignores SIGINT)
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen([sys.executable, "-m", "crystallize_dist", "status", run_id,
                             "--watch"], cwd=tmp_path, env=cli_env(broker, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=terminal_sigint)  # fmt: skip
    try:
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert f"stopped watching run {run_id}; it goes on" in err and "Traceback" not in err
    assert run_cli("delete", run_id, broker_url=broker, cwd=tmp_path, env=env).returncode == 0


@pytest.mark.parametrize(("attr", "code"), [("clock", 3), ("seeded", 0)])
def test_the_canary_runs_cells_again_in_another_pool_process(
    broker: str, pair: Worker, tmp_path: Path, attr: str, code: int
) -> None:
    out = run_cli("submit", f"{CANARY}:{attr}", "--canary", "0.25", "--wait", "--no-progress",
                  "--timeout", "120", broker_url=broker, cwd=tmp_path)  # fmt: skip
    assert out.returncode == code, out.stderr
    run_id = out.stdout.splitlines()[0]
    result = json.loads(cli(broker, tmp_path, "result", run_id, "--format", "json"))
    canary = result["provenance"]["canary"]
    assert canary["checked"] == 5 and canary["pending"] == [] and canary["same_process"] == 0
    status = cli(broker, tmp_path, "status", run_id)
    if attr == "clock":
        assert "canary: 5 of 5 re-run cells differ from their records" in out.stderr
        assert "canary: 5 of 5 cells checked, 0 matched, 5 mismatched" in status
        pool = {str(pid) for pid in pair.pool_pids()}
        for m in canary["mismatched"]:
            first, _, second = m["where"].partition(" then ")
            assert first != second
            assert first.rpartition(" pid ")[2] in pool and second.rpartition(" pid ")[2] in pool
    else:
        assert "canary" not in out.stderr and canary["matched"] == 5
        assert "canary: 5 of 5 cells checked, 5 matched, 0 mismatched" in status


def test_the_canary_runs_cells_again_on_another_worker(broker: str, tmp_path: Path) -> None:
    """Two workers of one process each, on a queue of their own: every sampled cell is run
    again by the worker that did not record it."""
    env = {"CRYSTALLIZE_DIST_QUEUE": "q-canary-two"}
    first = Worker(broker, tmp_path, name="one", concurrency=1, cwd=tmp_path, env=env)
    second = Worker(broker, tmp_path, name="two", concurrency=1, cwd=tmp_path, env=env)
    try:
        first.wait_ready()
        second.wait_ready()
        out = run_cli("submit", f"{CANARY}:clock", "--canary", "0.25", "--wait", "--no-progress",
                      "--timeout", "120", broker_url=broker, cwd=tmp_path, env=env)  # fmt: skip
    finally:
        first.stop()
        second.stop()
    assert out.returncode == 3, out.stderr
    run_id = out.stdout.splitlines()[0]
    result = json.loads(cli(broker, tmp_path, "result", run_id, "--format", "json"))
    canary = result["provenance"]["canary"]
    assert canary["checked"] == 5 and len(canary["mismatched"]) == 5
    nodes = {f"one@{first.host}", f"two@{second.host}"}
    for m in canary["mismatched"]:
        where = [w.rpartition(" pid ")[0] for w in m["where"].split(" then ")]
        assert set(where) == nodes, m["where"]
