"""No run stalls, hangs or loses a cell silently: real redis-server, real workers, the CLI as a
subprocess.

A worker killed with kill -9 has its cells running again within 45 s with the default
settings (heartbeats every 5 s, a 30 s grace period), without waiting for the visibility
timeout; a submitter waiting says what it waits for and rides out a Redis restart; Ctrl-C
leaves a run that can be waited for again or resumed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from redis_server import RedisServer
from workers import Worker, cli_env, run_cli

from crystallize_dist import SerialExecution, load_experiment
from crystallize_dist import constants as C
from crystallize_dist.distributed.results import load_result
from crystallize_dist.distributed.status import run_status
from crystallize_dist.distributed.store import RunStore, open_store
from crystallize_dist.distributed.waiting import wait_for

pytestmark = pytest.mark.integration

EXPERIMENT = str(Path(__file__).with_name("fault_experiments.py"))
CELLS = 24


def serial_digest() -> str:
    exp, _ = load_experiment(EXPERIMENT)
    serial = SerialExecution()
    exp.plugins.append(serial)
    try:
        return exp.run().digest
    finally:
        exp.plugins.remove(serial)


def submit(broker: str, env: dict[str, str], cwd: Path, *extra: str) -> str:
    out = run_cli("submit", EXPERIMENT, *extra, broker_url=broker, cwd=cwd, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[0]


def wait_records(store: RunStore, run_id: str, n: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = run_status(store, run_id)
        if st.done + st.failed >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} records after {timeout}s")


def starts(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def popen_cli(*args: str, broker: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "crystallize_dist", *args],
        cwd=cwd,
        env=cli_env(broker, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_terminal_sigint,
    )


def _terminal_sigint() -> None:
    """Ctrl-C as in a terminal: a test run started as a shell's background job ignores
    SIGINT, and its children would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_cells_of_a_worker_killed_with_kill_9_run_again_within_45s_by_default(
    redis_url: str, tmp_path: Path
) -> None:
    """Default heartbeat settings and visibility timeout (over an hour): the messages the dead
    worker held go back to the queue once its heartbeat is 30 s old, and a live worker runs
    their cells (each cell notes its start in a file)."""
    log = tmp_path / "starts"
    env = {"CDT_SLEEP": "4", "CDT_STARTS": str(log), "CRYSTALLIZE_DIST_QUEUE": "q-kill9"}
    run_id = submit(redis_url, env, tmp_path)
    store = open_store(redis_url)
    client = redis.Redis.from_url(redis_url)
    doomed = Worker(redis_url, tmp_path, name="doomed", concurrency=2, env=env).wait_ready()
    rescuer = Worker(redis_url, tmp_path, name="rescuer", concurrency=2, env=env)
    try:
        rescuer.wait_ready()
        wait_records(store, run_id, 4)
        held: list[str] = []
        deadline = time.time() + 30
        while not held and time.time() < deadline:  # what the doomed node says it holds
            raw = client.get(C.key_node(f"doomed@{doomed.host}"))
            listed = list(json.loads(raw).get("runs", {}).get(run_id, [])) if raw else []
            # a beat can be seconds old: keep the cells still without a record
            have = store.has_records(run_id, listed)
            held = [k for k, done in zip(listed, have, strict=True) if not done]
            time.sleep(0.1)
        assert held, "the doomed worker's heartbeat never listed a cell in flight"
        doomed.kill()
        killed = time.time()

        def started_again() -> bool:  # each held cell started a second time, or recorded
            log_now = starts(log)
            have = store.has_records(run_id, held)
            return all(log_now.count(k) > 1 or done for k, done in zip(held, have, strict=True))

        while not started_again() and time.time() < killed + 60:
            time.sleep(0.2)
        again = time.time() - killed
        wait_for(store, run_id, timeout=60)
    finally:
        doomed.stop()
        rescuer.stop()
    print(f"\nFIGURE kill -9 of a whole worker: its cells running again after {again:.1f}s")
    assert again < 45, f"the dead worker's cells waited {again:.1f}s"
    result = load_result(store, run_id)
    assert result.digest == serial_digest()
    assert store.counters(run_id)["ok"] == CELLS == store.count_records(run_id)
    redone = [k for k in held if starts(log).count(k) > 1]
    assert redone, "no cell the dead worker held was started again"


def _read_lines(proc: subprocess.Popen[str], into: list[tuple[float, str]]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        into.append((time.time(), line.rstrip("\n")))


def test_with_no_worker_waiting_says_so_within_15s_and_its_timeout_names_the_run(
    redis_url: str, tmp_path: Path
) -> None:
    import threading

    env = {"CRYSTALLIZE_DIST_QUEUE": "q-idle"}
    started = time.time()
    proc = popen_cli(
        "submit", EXPERIMENT, "--wait", "--timeout", "22", "--no-progress",
        broker=redis_url, cwd=tmp_path, env=env,
    )  # fmt: skip
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=_read_lines, args=(proc, lines))
    reader.start()
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()  # the run id comes before anything can block
    assert time.time() - started < 10 and run_id
    status = json.loads(run_cli("status", run_id, "--json", broker_url=redis_url, env=env).stdout)
    assert status["eta"] is None and status["state"] == "running" and status["nodes"] == []
    assert proc.wait(timeout=60) == 1
    reader.join(timeout=10)
    notices = [(t - started, line) for t, line in lines if "no live worker" in line]
    assert len(notices) == 1, lines
    at, notice = notices[0]
    assert 14 <= at <= 21, notices
    assert f"run {run_id}" in notice and "queue 'q-idle'" in notice
    assert f"crystallize-dist worker --broker {redis_url} -Q q-idle" in notice
    last = lines[-1][1]
    assert last.startswith(f"error: run '{run_id}' has 24 of 24 cells without a record after 22s")
    assert f"crystallize-dist wait {run_id}" in last


def test_waiting_rides_out_a_redis_restart(tmp_path: Path) -> None:
    """Redis is killed and started again (append-only file kept): the waiting submitter says
    it cannot reach Redis, that it is back, and finishes with the serial digest."""
    server = RedisServer(tmp_path / "redis", appendonly=True,
                         extra=["--appendfsync", "always"]).start()  # fmt: skip
    env = {"CDT_SLEEP": "0.3", "CRYSTALLIZE_DIST_QUEUE": "q-blip"}
    worker = Worker(server.url, tmp_path, name="steady", concurrency=2, env=env)
    proc = None
    try:
        worker.wait_ready()
        proc = popen_cli(
            "submit", EXPERIMENT, "--wait", "--timeout", "120", "--no-progress",
            "--format", "json", broker=server.url, cwd=tmp_path, env=env,
        )  # fmt: skip
        wait_records(open_store(server.url), _first_run(server.url), 4)
        server.stop(signal.SIGKILL)
        time.sleep(3)
        server.start()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        worker.stop()
        server.stop()
    assert proc.returncode == 0, err
    assert "cannot reach Redis" in err and "trying again" in err, err
    assert "Redis is back: still waiting for run" in err, err
    assert json.loads(out)["digest"] == serial_digest()


def _first_run(url: str, timeout: float = 30) -> str:
    """The id of the run just submitted to the Redis at ``url``."""
    store = open_store(url)
    deadline = time.time() + timeout
    while time.time() < deadline:
        ids = store.run_ids(1)
        if ids:
            return ids[0]
        time.sleep(0.05)
    raise AssertionError("no run was submitted")


BROKEN = """
import os
from fault_experiments import experiment  # noqa: F401
if os.environ.get("CDT_BROKEN"):
    raise ImportError("No module named 'sklearn'")
"""


def test_a_worker_that_cannot_load_the_experiment_is_shown_and_the_run_ends(
    redis_url: str, tmp_path: Path
) -> None:
    """The submitter sees the worker's load error within seconds; the run does not circle:
    once max_attempts loads have failed, its cells are recorded with the load error (exit 3)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "fault_experiments.py").write_text(Path(EXPERIMENT).read_text())
    (src / "broken_exp.py").write_text(BROKEN)
    env = {"CRYSTALLIZE_DIST_QUEUE": "q-broken"}
    worker = Worker(redis_url, tmp_path, name="broken", concurrency=2,
                    env={**env, "CDT_BROKEN": "1"})  # fmt: skip
    started = time.time()
    try:
        worker.wait_ready()
        out = run_cli(
            "submit", str(src / "broken_exp.py"), "--wait", "--timeout", "90", "--no-progress",
            broker_url=redis_url, cwd=tmp_path, env=env,
        )  # fmt: skip
    finally:
        worker.stop()
    took = time.time() - started
    assert out.returncode == 3, out.stderr
    shown = [line for line in out.stderr.splitlines() if "cannot load the experiment" in line]
    assert len(shown) == 1 and shown[0].startswith(f"worker broken@{worker.host} "), out.stderr
    assert "No module named 'sklearn'" in shown[0]
    assert "24 of 24 cells failed; the first: baseline_rep_0: ExperimentLoadError" in out.stderr
    run_id = out.stdout.split()[0]
    status = json.loads(run_cli("status", run_id, "--json", broker_url=redis_url).stdout)
    assert status["load_errors"] == {f"broken@{worker.host}": shown[0].split(": ", 1)[1]}
    store = open_store(redis_url)
    # One per failed load (each of the two pool processes may fail its last one at the same
    # time), not one per cell delivery.
    assert 3 <= store.counters(run_id)["load_failures"] <= 4
    print(f"\nFIGURE unloadable experiment: run ended after {took:.1f}s")


def test_ctrl_c_while_waiting_exits_130_and_wait_reattaches(redis_url: str, tmp_path: Path) -> None:
    env = {"CRYSTALLIZE_DIST_QUEUE": "q-ctrlc"}
    proc = popen_cli("submit", EXPERIMENT, "--wait", "--no-progress", broker=redis_url,
                     cwd=tmp_path, env=env)  # fmt: skip
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert f"interrupted: run {run_id} goes on on the workers" in err
    assert f"crystallize-dist wait {run_id}" in err and "Traceback" not in err
    worker = Worker(redis_url, tmp_path, name="later", concurrency=2, env=env)
    try:
        worker.wait_ready()
        out = run_cli("wait", run_id, "--format", "json", "--no-progress", "--timeout", "60",
                      broker_url=redis_url, cwd=tmp_path, env=env)  # fmt: skip
    finally:
        worker.stop()
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["digest"] == serial_digest()


def test_ctrl_c_on_a_local_run_stops_within_2s_and_resume_finishes_it(tmp_path: Path) -> None:
    from workers import children

    env = {"CDT_SLEEP": "1", "CRYSTALLIZE_DIST_HOME": str(tmp_path / "home")}
    proc = popen_cli("submit", EXPERIMENT, "--local", "-w", "2", "--no-progress",
                     broker="redis://127.0.0.1:1/0", cwd=tmp_path, env=env)  # fmt: skip
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    store = open_store(f"sqlite:///{tmp_path / 'home' / C.SQLITE_FILENAME}")
    wait_records(store, run_id, 2)
    pool = children(proc.pid)
    assert pool, "the local pool has no processes"
    proc.send_signal(signal.SIGINT)
    sent = time.time()
    _, err = proc.communicate(timeout=30)
    stopped = time.time() - sent
    assert proc.returncode == 130, err
    assert stopped < 2, f"took {stopped:.1f}s to stop"
    assert all(not Path(f"/proc/{pid}").exists() for pid in pool), "pool processes left"
    assert f"`crystallize-dist resume {run_id} --local`" in err and "Traceback" not in err
    status = json.loads(
        run_cli("status", run_id, "--local", "--json", cwd=tmp_path, env=env).stdout
    )
    assert status["state"] == "interrupted" and status["eta"] is None and status["pending"] > 0
    out = run_cli("resume", run_id, "--local", "-w", "2", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert load_result(store, run_id).digest == serial_digest()
    status = json.loads(
        run_cli("status", run_id, "--local", "--json", cwd=tmp_path, env=env).stdout
    )
    assert status["state"] == "finished"
    print(f"\nFIGURE Ctrl-C on --local: stopped in {stopped:.2f}s")


def test_status_shows_heartbeats_and_marks_a_dead_worker(redis_url: str, tmp_path: Path) -> None:
    fast = {"CRYSTALLIZE_DIST_HEARTBEAT_INTERVAL": "1", "CRYSTALLIZE_DIST_HEARTBEAT_GRACE": "3"}
    env = {**fast, "CDT_SLEEP": "1", "CRYSTALLIZE_DIST_QUEUE": "q-dead"}
    run_id = submit(redis_url, env, tmp_path)
    store = open_store(redis_url)
    worker = Worker(redis_url, tmp_path, name="gone", concurrency=2, env=env).wait_ready()
    try:
        wait_records(store, run_id, 2)
        status = json.loads(run_cli("status", run_id, "--json", broker_url=redis_url,
                                    env=env).stdout)  # fmt: skip
        (node,) = status["nodes"]
        assert node["node"] == f"gone@{worker.host}" and node["state"] == "alive"
        assert node["in_flight"] >= 1 and node["done"] >= 2 and time.time() - node["last_beat"] < 3
        assert status["eta"] is not None
        worker.kill()
        time.sleep(4)
        text = run_cli("status", run_id, broker_url=redis_url, env=env).stdout
        status = json.loads(run_cli("status", run_id, "--json", broker_url=redis_url,
                                    env=env).stdout)  # fmt: skip
    finally:
        worker.stop()
    (node,) = status["nodes"]
    assert node["state"] == "dead" and node["in_flight"] == 0
    assert node["done"] == status["done"] + status["failed"]
    assert status["eta"] is None and status["state"] == "running"
    assert "dead" in text and f"gone@{worker.host}" in text and "eta: -" in text


def test_a_run_longer_than_its_ttl_loses_nothing(redis_url: str, tmp_path: Path) -> None:
    """Every write gives all of the run's keys their TTL again: a 3 s TTL on a run of about
    12 s, and the manifest, state and every record are still there at the end."""
    env = {"CDT_SLEEP": "1", "CRYSTALLIZE_DIST_RESULT_TTL": "3", "CRYSTALLIZE_DIST_QUEUE": "q-ttl"}
    worker = Worker(redis_url, tmp_path, name="ttl", concurrency=2, env=env).wait_ready()
    try:
        out = run_cli("submit", EXPERIMENT, "--wait", "--format", "json", "--no-progress",
                      "--timeout", "90", broker_url=redis_url, cwd=tmp_path, env=env)  # fmt: skip
    finally:
        worker.stop()
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["digest"] == serial_digest() and not result["provenance"].get("missing")
    assert len(result["provenance"]["cells"]) == CELLS


def test_a_waiting_submitter_sends_lost_cells_again(redis_url: str, tmp_path: Path) -> None:
    """Task messages that vanished from the broker (a Redis without persistence restarted,
    say) leave cells with no record and no message: ``wait`` finds them once the run has made
    no progress for a grace period, sends them again with their seeds, and the run finishes
    with the serial digest - no ``resume`` needed."""
    fast = {"CRYSTALLIZE_DIST_HEARTBEAT_INTERVAL": "1", "CRYSTALLIZE_DIST_HEARTBEAT_GRACE": "3"}
    env = {**fast, "CRYSTALLIZE_DIST_QUEUE": "q-lost", "CRYSTALLIZE_DIST_CELLS_PER_TASK": "1"}
    run_id = submit(redis_url, env, tmp_path)
    client = redis.Redis.from_url(redis_url)
    assert client.llen("q-lost") == CELLS
    assert len(client.rpop("q-lost", 5) or []) == 5  # five messages vanish
    worker = Worker(redis_url, tmp_path, name="finisher", concurrency=2, env=env).wait_ready()
    try:
        out = run_cli("wait", run_id, "--format", "json", "--no-progress", "--timeout", "90",
                      broker_url=redis_url, cwd=tmp_path, env=env)  # fmt: skip
    finally:
        worker.stop()
    assert out.returncode == 0, out.stderr
    assert f"5 cell(s) of run {run_id} had no record and no task message left (lost)" in out.stderr
    assert json.loads(out.stdout)["digest"] == serial_digest()


def test_cancel_delete_and_purge_on_redis(redis_url: str, tmp_path: Path) -> None:
    """No worker runs: cancel twice says so the second time; delete removes the run's keys
    and its queued messages (not another run's); purge removes what is older than its age,
    and the runs index with it."""
    env = {"CRYSTALLIZE_DIST_QUEUE": "q-manage"}
    client = redis.Redis.from_url(redis_url)
    first, second = submit(redis_url, env, tmp_path), submit(redis_url, env, tmp_path)
    queued = client.llen("q-manage")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, broker_url=redis_url, cwd=tmp_path, env=env)

    assert cli("cancel", first).stdout.strip() == f"cancelled {first}"
    again = cli("cancel", first)
    assert (again.returncode, again.stdout.strip()) == (
        0, f"run {first} is already cancelled; nothing changed"
    )  # fmt: skip
    out = cli("delete", first)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"deleted {first} and {queued // 2} task message(s)"
    assert client.llen("q-manage") == queued - queued // 2
    assert not client.keys(f"*{first}*")
    assert cli("status", first).returncode != 0
    out = cli("purge", "--older-than", "0s")
    assert out.stdout.strip() == f"purged 1 run(s): {second}", out.stderr
    assert client.llen("q-manage") == 0 and not client.keys(f"*{second}*")
    assert client.zcard(C.KEY_RUNS) == 0


def test_a_worker_survives_redis_restarts_while_it_holds_cells(tmp_path: Path) -> None:
    """Redis is killed and started again four times while a worker runs 1 s cells: the worker
    reconnects every time (Celery would otherwise exit on closing the lost connection with
    messages in hand) and the run finishes with the serial digest."""
    server = RedisServer(tmp_path / "redis", appendonly=True,
                         extra=["--appendfsync", "always"]).start()  # fmt: skip
    fast = {"CRYSTALLIZE_DIST_HEARTBEAT_INTERVAL": "1", "CRYSTALLIZE_DIST_HEARTBEAT_GRACE": "3"}
    env = {**fast, "CDT_SLEEP": "1", "CRYSTALLIZE_DIST_QUEUE": "q-restarts"}
    worker = Worker(server.url, tmp_path, name="steadfast", concurrency=2, env=env)
    try:
        worker.wait_ready()
        run_id = submit(server.url, env, tmp_path, "--cells-per-task", "1")
        store = open_store(server.url, retries=20)
        for n in range(4):
            wait_records(store, run_id, 2 * (n + 1), timeout=90)
            server.stop(signal.SIGKILL)
            time.sleep(0.5)
            server.start()
            time.sleep(2.5)  # reconnected, and taken cells again
            assert worker.proc.poll() is None, worker.log.read_text()[-3000:]
        # as a user waits: `wait` also sends again a cell whose message was taken from the
        # queue just before Redis died, and so never reached the worker
        out = run_cli("wait", run_id, "--timeout", "120", "--no-progress",
                      broker_url=server.url, cwd=tmp_path, env=env)  # fmt: skip
        assert out.returncode == 0, out.stderr + worker.log.read_text()[-3000:]
        assert worker.proc.poll() is None
        assert load_result(store, run_id).digest == serial_digest()
    finally:
        worker.stop()
        server.stop()
    assert "Unrecoverable error" not in worker.log.read_text()
