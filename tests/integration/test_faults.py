"""Faults cost time, never data, and never change the numbers.

Each scenario runs on a real redis-server with real worker processes and asserts that the
final digest equals a clean serial run's, that no finished cell was lost, and that no cell
was counted twice. Figures (recovery time, attempts, duplicates) are printed (``-s``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_server import RedisServer
from workers import ROOT, Worker, cli_env, run_cli

from crystallize_dist import SerialExecution, load_experiment
from crystallize_dist.config import Settings
from crystallize_dist.distributed.results import load_result
from crystallize_dist.distributed.status import lost_cells, run_status
from crystallize_dist.distributed.store import RunStore, open_store
from crystallize_dist.distributed.waiting import wait_for
from crystallize_dist.errors import RunTimeoutError

EXPERIMENT = str(Path(__file__).with_name("fault_experiments.py"))
CELLS = 24  # 12 replicates x (baseline + 1 treatment)
FAST = {"CRYSTALLIZE_DIST_VISIBILITY_TIMEOUT": "6", "CRYSTALLIZE_DIST_CELL_TIME_LIMIT": "2"}


def serial_result() -> Any:
    exp, _ = load_experiment(EXPERIMENT)
    serial = SerialExecution()
    exp.plugins.append(serial)
    try:
        return exp.run()
    finally:
        exp.plugins.remove(serial)


SERIAL_DIGEST: str | None = None


def serial_digest() -> str:
    global SERIAL_DIGEST
    if SERIAL_DIGEST is None:
        SERIAL_DIGEST = serial_result().digest
    return SERIAL_DIGEST


def figure(name: str, **values: Any) -> None:
    print(f"\nFIGURE {name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


@pytest.fixture
def env(redis_url: str, request: pytest.FixtureRequest) -> dict[str, str]:
    return {**FAST, "CRYSTALLIZE_DIST_QUEUE": f"q-{request.node.name[:40]}"}


def submit(broker: str, env: dict[str, str], cwd: Path, *extra: str) -> str:
    out = run_cli("submit", EXPERIMENT, *extra, broker_url=broker, cwd=cwd, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[0]


def finish(broker: str, tmp_path: Path, run_id: str, env: dict[str, str],
           timeout: float = 60) -> RunStore:
    """Start a worker (2 processes), wait until every cell of the run has a record, stop it."""
    worker = Worker(broker, tmp_path, name="w", concurrency=2, cwd=tmp_path, env=env)
    try:
        worker.wait_ready()
        store = open_store(broker)
        wait_for(store, run_id, timeout=timeout)
    finally:
        worker.stop()
    return store


def records(store: RunStore, run_id: str) -> dict[str, dict[str, Any]]:
    return {f"{r['condition']}:{r['replicate']}": r for r in store.iter_records(run_id)}


def wait_records(store: RunStore, run_id: str, n: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = run_status(store, run_id)
        if st.done + st.failed >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} records after {timeout}s")


def assert_clean(store: RunStore, run_id: str, before: dict[str, dict[str, Any]]) -> Any:
    """Digest equals serial; every record written before the fault is unchanged; every cell
    counted once."""
    after = records(store, run_id)
    for key, rec in before.items():
        assert after[key]["metrics"] == rec["metrics"] and after[key]["timing"] == rec["timing"]
    counters = store.counters(run_id)
    assert counters.get("ok", 0) + counters.get("error", 0) == CELLS == len(after)
    result = load_result(store, run_id)
    assert result.digest == serial_digest()
    return result


def test_kill_9_of_a_whole_worker_then_a_second_worker_finishes(
        redis_url: str, env: dict[str, str], tmp_path: Path) -> None:
    slow = {**env, "CDT_SLEEP": "0.25"}
    run_id = submit(redis_url, slow, tmp_path)
    store = open_store(redis_url)
    first = Worker(redis_url, tmp_path, name="doomed", concurrency=2, cwd=tmp_path, env=slow)
    first.wait_ready()
    wait_records(store, run_id, 6)
    first.kill()  # main process and both pool children, mid-cell
    killed_at = time.time()
    before = records(store, run_id)
    assert 6 <= len(before) < CELLS
    # started and not finished: the cells the kill cut short (none when it landed while both
    # pool children were between cells, waiting for the main process to take the next ones)
    in_flight = [key for key in store.attempts(run_id) if key not in before]
    second = Worker(redis_url, tmp_path, name="rescuer", concurrency=2, cwd=tmp_path, env=slow)
    lost: list[str] = []
    try:
        second.wait_ready()
        try:
            wait_for(store, run_id, timeout=45)
        except RunTimeoutError:
            # kombu takes a message off the queue and then notes it unacknowledged, in two
            # steps: a kill in between loses that message. Such a cell must show as lost
            # (no record, no message), and resume must bring it back.
            lost = lost_cells(store, Settings.from_env(broker_url=redis_url), run_id)
            assert lost and len(lost) == run_status(store, run_id).pending, lost
            out = run_cli("resume", run_id, "--wait", "--timeout", "60",
                          broker_url=redis_url, cwd=tmp_path, env=slow)
            assert out.returncode == 0, out.stderr
        recovered = time.time() - killed_at
        result = assert_clean(store, run_id, before)
    finally:
        second.stop()
    status = run_status(store, run_id)
    redelivered = [k for k, c in result.provenance["cells"].items() if c["attempts"] > 1]
    assert set(in_flight) <= set(redelivered)  # the cells the kill cut short ran again
    assert status.attempts == CELLS + sum(
        c["attempts"] - 1 for c in result.provenance["cells"].values())
    assert {c["worker"]["node"].split("@")[0] for c in result.provenance["cells"].values()} \
        == {"doomed", "rescuer"}
    figure("kill -9 worker", recovery_s=round(recovered, 1), attempts=status.attempts,
           duplicates=status.duplicates, redelivered=len(redelivered), lost=len(lost))


def test_kill_9_of_one_pool_child_requeues_its_cell_at_once(
        redis_url: str, env: dict[str, str], tmp_path: Path) -> None:
    piddir = tmp_path / "pids"
    piddir.mkdir()
    slow = {**env, "CDT_SLEEP": "1.0", "CDT_PIDDIR": str(piddir)}
    run_id = submit(redis_url, slow, tmp_path)
    store = open_store(redis_url)
    worker = Worker(redis_url, tmp_path, name="pool", concurrency=2, cwd=tmp_path, env=slow)
    try:
        worker.wait_ready()
        deadline = time.time() + 30
        victim = None
        while victim is None and time.time() < deadline:
            running = [p for p in piddir.iterdir()
                       if store.get_record(run_id, *p.name.rsplit(":", 1)[0:1],
                                           int(p.name.rsplit(":", 1)[1])) is None]
            if running:
                victim = running[0]
            time.sleep(0.05)
        assert victim is not None
        pid = int(victim.read_text())
        assert pid in worker.pool_pids()
        os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        client = redis.Redis.from_url(redis_url)
        marker = f'"{run_id}:{victim.name}"'.encode()
        requeued_in = None
        while time.time() < killed_at + 5:  # back in the queue (or running again) at once
            queued = any(marker in m for m in client.lrange(env["CRYSTALLIZE_DIST_QUEUE"], 0, -1))
            if queued or store.attempts(run_id).get(victim.name, 0) >= 2:
                requeued_in = time.time() - killed_at
                break
            time.sleep(0.02)
        assert requeued_in is not None, "the killed cell did not come back within 5 s"
        wait_for(store, run_id, timeout=90)
        assert_clean(store, run_id, {})
    finally:
        worker.stop()
    attempts = store.attempts(run_id)
    assert attempts[victim.name] == 2  # started twice, recorded once
    assert worker.proc.returncode is not None
    figure("kill -9 pool child", requeued_after_s=round(requeued_in, 2),
           attempts_of_cell=attempts[victim.name])


def _restart(server: RedisServer) -> float:
    server.stop()
    down = time.time()
    time.sleep(1.0)
    server.start()
    return down


def test_redis_restart_with_appendonly_workers_reconnect(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "aof", appendonly=True,
                         extra=["--appendfsync", "always"]).start()
    try:
        env = {**FAST, "CDT_SLEEP": "0.25", "CRYSTALLIZE_DIST_QUEUE": "q-aof"}
        run_id = submit(server.url, env, tmp_path)
        store = open_store(server.url, retries=20)
        worker = Worker(server.url, tmp_path, name="survivor", concurrency=2, cwd=tmp_path,
                        env=env)
        try:
            worker.wait_ready()
            wait_records(store, run_id, 6)
            down = _restart(server)
            before = records(store, run_id)
            # as a user waits: `wait` also sends again a cell whose message Redis lost
            out = run_cli("wait", run_id, "--timeout", "120", "--no-progress",
                          broker_url=server.url, cwd=tmp_path, env=env)  # fmt: skip
            assert out.returncode == 0, (
                f"{out.stderr}; worker exit code {worker.proc.poll()}; its log ends:\n"
                + worker.text()[-4000:]
            )
            recovered = time.time() - down
            assert worker.proc.poll() is None  # the same worker reconnected
            assert_clean(store, run_id, before)
        finally:
            worker.stop()
        figure("redis restart (appendonly)", finish_after_restart_s=round(recovered, 1),
               attempts=run_status(store, run_id).attempts)
    finally:
        server.stop()


def test_redis_restart_without_persistence_status_names_lost_cells_and_resume_completes(
        tmp_path: Path) -> None:
    broker = RedisServer(tmp_path / "broker").start()  # no persistence: the queue is lost
    keeper = RedisServer(tmp_path / "store", appendonly=True).start()  # the run store
    try:
        env = {**FAST, "CDT_SLEEP": "0.25", "CRYSTALLIZE_DIST_QUEUE": "q-lost",
               "CRYSTALLIZE_DIST_STORE_URL": keeper.url}
        run_id = submit(broker.url, env, tmp_path)
        store = open_store(keeper.url)
        worker = Worker(broker.url, tmp_path, name="w", concurrency=1, cwd=tmp_path, env=env)
        try:
            worker.wait_ready()
            wait_records(store, run_id, 4)
            _restart(broker)
            time.sleep(3)  # the worker reconnects; nothing is left to deliver
            before = records(store, run_id)
            out = run_cli("status", run_id, "--json", broker_url=broker.url, cwd=tmp_path,
                          env=env)
            assert out.returncode == 0, out.stderr
            status = json.loads(out.stdout)
            assert status["lost"] and len(status["lost"]) == status["pending"]
            assert set(status["lost"]).isdisjoint(before)
            text = run_cli("status", run_id, broker_url=broker.url, cwd=tmp_path, env=env)
            assert "lost" in text.stdout and status["lost"][0] in text.stdout
            out = run_cli("resume", run_id, "--wait", broker_url=broker.url, cwd=tmp_path,
                          env=env)
            assert out.returncode == 0, out.stderr
            assert_clean(store, run_id, before)
        finally:
            worker.stop()
        figure("redis restart (no persistence)", lost=len(status["lost"]),
               kept=len(before))
    finally:
        broker.stop()
        keeper.stop()


def test_submitter_killed_right_after_enqueue(
        redis_url: str, env: dict[str, str], tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "crystallize_dist", "submit", EXPERIMENT, "--wait",
         "--no-progress"], cwd=tmp_path, env=cli_env(redis_url, **env),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()  # printed after every cell was enqueued
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finish(redis_url, tmp_path, run_id, env, timeout=60)
    out = run_cli("result", run_id, "--format", "json", broker_url=redis_url, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["digest"] == serial_digest()
    assert_clean(open_store(redis_url), run_id, {})


def test_poison_cell_is_recorded_after_its_retry_budget(
        redis_url: str, env: dict[str, str], tmp_path: Path) -> None:
    poison = {**env, "CDT_POISON": "baseline:3", "CRYSTALLIZE_DIST_RETRIES": "2"}
    run_id = submit(redis_url, poison, tmp_path)
    store = finish(redis_url, tmp_path, run_id, poison, timeout=60)
    rec = store.get_record(run_id, "baseline", 3)
    assert rec is not None and rec["status"] == "error" and rec["tries"] == 3
    assert "poisoned cell baseline:3" in rec["error"]["traceback"]
    result = load_result(store, run_id)
    assert set(result.errors) == {"baseline_rep_3"}
    # the same failure as a serial run with the same poison: same digest, same error keys
    os.environ["CDT_POISON"] = "baseline:3"
    try:
        serial = serial_result()
    finally:
        del os.environ["CDT_POISON"]
    assert result.digest == serial.digest and set(serial.errors) == set(result.errors)


def test_a_cell_that_kills_its_worker_every_time_stops_after_bounded_attempts(
        redis_url: str, env: dict[str, str], tmp_path: Path) -> None:
    crash = {**env, "CDT_CRASH": "shift:5", "CRYSTALLIZE_DIST_MAX_ATTEMPTS": "3"}
    run_id = submit(redis_url, crash, tmp_path)
    worker = Worker(redis_url, tmp_path, name="w", concurrency=2, cwd=tmp_path, env=crash)
    started = time.time()
    try:
        worker.wait_ready()
        store = open_store(redis_url)
        wait_for(store, run_id, timeout=90)
        assert worker.proc.poll() is None  # the worker survived its children dying
    finally:
        worker.stop()
    rec = store.get_record(run_id, "shift", 5)
    assert rec is not None and rec["error"]["type"] == "WorkerLostError"
    assert "worker lost" in rec["error"]["message"]
    assert store.attempts(run_id)["shift:5"] == 4  # three deaths, then recorded
    result = load_result(store, run_id)
    assert set(result.errors) == {"shift_rep_5"}
    figure("worker-killing cell", attempts=4, finished_in_s=round(time.time() - started, 1))


def test_a_quick_cell_that_kills_its_worker_on_a_first_delivery_is_still_bounded(
        redis_url: str, env: dict[str, str], tmp_path: Path) -> None:
    """One pool process, quick cells: the killing cell's first delivery runs before its
    start is counted (its start and record would be written together), so that delivery is
    not counted; every redelivery is counted before it runs. It runs max_attempts + 1 times
    in all, then is recorded as lost; every other cell is recorded once."""
    starts = tmp_path / "starts.log"
    crash = {**env, "CDT_CRASH": "shift:5", "CDT_STARTS": str(starts),
             "CRYSTALLIZE_DIST_MAX_ATTEMPTS": "3"}
    run_id = submit(redis_url, crash, tmp_path)
    worker = Worker(redis_url, tmp_path, name="w1", concurrency=1, cwd=tmp_path, env=crash)
    try:
        worker.wait_ready()
        store = open_store(redis_url)
        wait_for(store, run_id, timeout=90)
    finally:
        worker.stop()
    ran = starts.read_text().split()
    assert ran.count("shift:5") == 4  # one uncounted first delivery, three counted ones
    assert {c: ran.count(c) for c in set(ran) - {"shift:5"}} == dict.fromkeys(
        set(ran) - {"shift:5"}, 1)
    assert len(set(ran)) == CELLS
    rec = store.get_record(run_id, "shift", 5)
    assert rec is not None and rec["error"]["type"] == "WorkerLostError"
    assert store.attempts(run_id)["shift:5"] == 4  # the counted deliveries, the last refused
    counters = store.counters(run_id)
    assert counters["ok"] == CELLS - 1 and counters.get("duplicates", 0) == 0
    figure("worker-killing quick cell", runs=ran.count("shift:5"),
           counted=store.attempts(run_id)["shift:5"])


@pytest.mark.parametrize("stubborn", [False, True], ids=["deadline", "hard-kill"])
def test_a_cell_over_its_time_limit_is_a_timeout_error_and_others_are_unaffected(
        stubborn: bool, redis_url: str, env: dict[str, str], tmp_path: Path) -> None:
    hang = {**env, "CDT_HANG": "baseline:2", "CRYSTALLIZE_DIST_MAX_ATTEMPTS": "2"}
    if stubborn:  # ignores the deadline: only the hard time limit (4 s) stops it
        hang["CDT_STUBBORN"] = "1"
    run_id = submit(redis_url, hang, tmp_path)
    worker = Worker(redis_url, tmp_path, name="w", concurrency=2, cwd=tmp_path, env=hang)
    started = time.time()
    try:
        worker.wait_ready()
        store = open_store(redis_url)
        wait_for(store, run_id, timeout=60)
    finally:
        worker.stop()
    rec = store.get_record(run_id, "baseline", 2)
    assert rec is not None and rec["status"] == "error"
    if stubborn:  # killed at the hard limit on each of its 2 attempts, then recorded
        assert rec["error"]["type"] == "WorkerLostError"
        assert "hard time limit (4s)" in rec["error"]["message"]
        assert store.attempts(run_id)["baseline:2"] == 3
    else:
        assert rec["error"]["type"] == "CellTimeoutError"
        assert "time limit of 2s" in rec["error"]["message"]
    serial = {f"{r['condition']}:{r['replicate']}": r["metrics"] for r in _serial_records()}
    got = records(store, run_id)
    assert len(got) == CELLS
    for key, r in got.items():
        if key != "baseline:2":
            assert r["status"] == "ok" and r["metrics"] == serial[key]
    assert store.counters(run_id)["error"] == 1
    figure(f"time limit ({'hard' if stubborn else 'deadline'})",
           run_s=round(time.time() - started, 1))


def _serial_records() -> list[dict[str, Any]]:
    from crystallize_dist.engine.cell import execute_cell
    from crystallize_dist.engine.runspec import resolve

    exp, _ = load_experiment(EXPERIMENT)
    spec = resolve(exp)
    return [execute_cell(spec, c) for c in spec.plan.cells()]


def test_cancel_stops_new_cells_and_keeps_recorded_ones(
        redis_url: str, env: dict[str, str], tmp_path: Path) -> None:
    """After a cancel no cell starts - not even one run ahead of its start (which would
    waste a slow cell's time); a resume then sends the skipped cells again, and the run
    finishes with the serial digest."""
    piddir = tmp_path / "ran"
    piddir.mkdir()
    slow = {**env, "CDT_SLEEP": "0.3", "CDT_PIDDIR": str(piddir)}
    run_id = submit(redis_url, slow, tmp_path)
    store = open_store(redis_url)
    worker = Worker(redis_url, tmp_path, name="w", concurrency=2, cwd=tmp_path, env=slow)
    try:
        worker.wait_ready()
        wait_records(store, run_id, 4)
        out = run_cli("cancel", run_id, broker_url=redis_url, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        started_before_cancel = set(store.attempts(run_id))
        kept = records(store, run_id)
        time.sleep(3)  # every queued message is delivered and skipped
        final = records(store, run_id)
        ran = {p.name for p in piddir.iterdir()}
        assert ran <= started_before_cancel  # no cell ran after the cancel
        assert set(final) <= started_before_cancel  # none was recorded either
        assert len(final) < CELLS
        for key, rec in kept.items():
            assert final[key] == rec
        status = run_status(store, run_id)
        assert status.cancelled and status.pending == CELLS - len(final)
        figure("cancel", recorded=len(final), skipped=CELLS - len(final))
        out = run_cli("resume", run_id, "--wait", "--timeout", "60", broker_url=redis_url,
                      cwd=tmp_path, env=slow)
        assert out.returncode == 0, out.stderr
        assert f"{CELLS - len(final)} cells re-enqueued" in out.stdout
        assert load_result(store, run_id).digest == serial_digest()
    finally:
        worker.stop()


@pytest.fixture(autouse=True)
def _no_stray_env() -> Iterator[None]:
    yield
    for key in ("CDT_POISON", "CDT_CRASH", "CDT_HANG"):
        os.environ.pop(key, None)


def test_worker_environment_is_documented_for_ci() -> None:
    assert ROOT.joinpath("README.md").exists()
