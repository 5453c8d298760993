"""A run whose store refuses writes mid-run - a full disk under ``--local``, a Redis out of
memory, a Redis turned read-only - is marked failed with the cause (or, when even that cannot
be written, said to have stopped), never left "running"; its partial result says so on its
first line and in JSON (``"complete": false``), has no digest, and the CLI exits 1.

Real components only: a tmpfs of 8 MiB in a private mount namespace filled by the experiment
itself, a real redis-server with a tiny ``maxmemory`` and ``noeviction``, real workers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
from mountns import PrivateTmpfs
from redis_server import RedisServer, free_port
from workers import Worker, children, cli_env, run_cli

from crystallize_dist import load_experiment

EXPERIMENT = '''
import os, time
from crystallize_dist import DataSource, Experiment, Pipeline, PipelineStep, SeedPlugin, Treatment


class Draw(DataSource):
    def fetch(self, ctx):
        return ctx.rng.normal()


class Step(PipelineStep):
    """At baseline replicate FILL_AT, fills the disk holding FILL_FILE; records BLOB bytes
    (a string) besides the value; sleeps PAUSE seconds."""

    def __call__(self, data, ctx):
        if ctx.get("condition") == "baseline" and ctx.get("replicate") == int(
            os.environ.get("FILL_AT", "-1")
        ):
            try:
                with open(os.environ["FILL_FILE"], "ab") as fh:
                    while True:
                        fh.write(b"x" * 65536)
                        fh.flush()
            except OSError:
                pass
        time.sleep(float(os.environ.get("PAUSE", "0")))
        value = data + ctx.get("shift", 0.0)
        return data, {"value": value, "blob": "x" * int(os.environ.get("BLOB", "0"))}


experiment = Experiment(Draw(), Pipeline([Step()]), plugins=[SeedPlugin(seed=1)],
                        treatments=[Treatment("shifted", {"shift": 1.0})], replicates=30)
'''
HEX_DIGEST = re.compile(r"^digest: [0-9a-f]{64}$", re.M)


def _experiment(tmp_path: Path) -> Path:
    path = tmp_path / "trial" / "store_exp.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EXPERIMENT)
    return path


def _serial_digest(path: Path) -> str:
    return str(load_experiment(str(path))[0].run().digest)


def _one_error(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def _partial(stdout: str, run_id: str, cause: str) -> None:
    """A partial result as a table: its first line says so (and why), no digest."""
    lines = stdout.splitlines()
    assert lines[0] == run_id, stdout
    assert lines[1].startswith("partial result: ") and cause in lines[1], stdout
    assert "digest: none (partial result)" in stdout and not HEX_DIGEST.search(stdout), stdout


def test_a_full_disk_mid_run_marks_the_local_run_failed_and_resume_finishes_it(
    tmp_path: Path,
) -> None:
    exp = _experiment(tmp_path)
    disk = PrivateTmpfs(tmp_path / "disk", "8m")
    env = cli_env(
        "redis://127.0.0.1:1/0",
        CRYSTALLIZE_DIST_HOME=str(disk.path / "home"),
        FILL_FILE=str(disk.path / "filler"),
        FILL_AT="4",
    )

    def cli(*args: str, **more: str) -> subprocess.CompletedProcess[str]:
        return disk.run(sys.executable, "-m", "crystallize_dist", *args, env={**env, **more})

    try:
        out = cli("submit", str(exp), "--local", "--workers", "1", "--no-progress")
        assert out.returncode == 1, out.stderr
        run_id = out.stdout.splitlines()[0]
        _partial(out.stdout, run_id, "database or disk is full")
        line = _one_error(out.stderr)
        assert f"run {run_id} failed: the run store could not be written" in line, line
        assert "database or disk is full" in line and f"resume {run_id} --local" in line, line
        status = json.loads(cli("status", run_id, "--local", "--json").stdout)
        assert status["state"] == "failed" and status["eta"] is None, status
        assert "database or disk is full" in status["failure"] and status["pending"] > 0
        table = cli("status", run_id, "--local").stdout
        assert "state: failed" in table and "eta: -" in table and "failed: the run store" in table
        assert re.search(rf"{run_id} .* failed", cli("list", "--local").stdout)
        result = cli("result", run_id, "--local", "--format", "json")
        assert result.returncode == 1
        data = json.loads(result.stdout)
        assert data["complete"] is False and data["digest"] is None
        assert "disk is full" in data["provenance"]["failed"]["cause"]
        # space again: resume runs the cells left, and the run is the run that never failed
        disk.run("rm", "-f", str(disk.path / "filler"), check=True)
        again = cli("resume", run_id, "--local", "--workers", "1", FILL_AT="-1")
        assert again.returncode == 0, again.stderr
        final = cli("result", run_id, "--local", "--format", "json")
        assert final.returncode == 0, final.stderr
        done = json.loads(final.stdout)
        assert done["complete"] is True and done["digest"] == _serial_digest(exp)
        assert json.loads(cli("status", run_id, "--local", "--json").stdout)["state"] == "finished"
    finally:
        disk.stop()


def test_a_store_on_a_disk_mounted_read_only_is_read_and_refuses_writes_in_one_line(
    tmp_path: Path,
) -> None:
    """A disk remounted read-only (after a failure, as the kernel does on disk errors):
    its runs are still read, and each write is one line saying the disk is read-only."""
    exp = _experiment(tmp_path)
    disk = PrivateTmpfs(tmp_path / "disk", "8m")
    env = cli_env(
        "redis://127.0.0.1:1/0",
        CRYSTALLIZE_DIST_HOME=str(disk.path / "home"),
        FILL_FILE=str(disk.path / "filler"),
        FILL_AT="4",
    )

    def cli(*args: str, **more: str) -> subprocess.CompletedProcess[str]:
        return disk.run(sys.executable, "-m", "crystallize_dist", *args, env={**env, **more})

    try:
        run_id = cli("submit", str(exp), "--local", "--workers", "1").stdout.splitlines()[0]
        disk.run("rm", "-f", str(disk.path / "filler"), check=True)
        disk.run("mount", "-o", "remount,ro", str(disk.path), check=True)
        status = json.loads(cli("status", run_id, "--local", "--json").stdout)
        assert status["state"] == "failed" and status["pending"] > 0, status
        result = cli("result", run_id, "--local", "--format", "json")
        assert result.returncode == 1 and json.loads(result.stdout)["complete"] is False
        assert re.search(rf"{run_id} .* failed", cli("list", "--local").stdout)
        for args in (("resume", run_id, "--local"), ("submit", str(exp), "--local")):
            out = cli(*args, FILL_AT="-1")
            assert out.returncode == 1, out.stdout + out.stderr
            line = _one_error(out.stderr)
            assert "attempt to write a readonly database" in line, line
            assert f"({disk.path / 'home'}) is mounted read-only" in line, line
        disk.run("mount", "-o", "remount,rw", str(disk.path), check=True)
        assert cli("resume", run_id, "--local", FILL_AT="-1").returncode == 0
        final = json.loads(cli("result", run_id, "--local", "--format", "json").stdout)
        assert final["complete"] is True and final["digest"] == _serial_digest(exp)
    finally:
        disk.stop()


def test_a_local_run_whose_driver_is_gone_is_stopped_not_running(tmp_path: Path) -> None:
    """What a store that can take no mark at all (read-only) leaves: a ``--local`` run whose
    driver process is gone. ``status`` says stopped, ``wait`` says so and exits 1."""
    exp = _experiment(tmp_path)
    env = cli_env("redis://127.0.0.1:1/0", PAUSE="0.1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "crystallize_dist", "submit", str(exp), "--local", "-w", "2",
         "--no-progress"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            st = json.loads(run_cli("status", run_id, "--local", "--json", cwd=tmp_path).stdout)
            if st["done"] >= 4:
                break
            time.sleep(0.1)
        assert st["state"] == "running"
    finally:
        for pid in [*children(proc.pid), proc.pid]:  # kill -9: no chance to say anything
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=30)
        proc.stdout.close()
    st = json.loads(run_cli("status", run_id, "--local", "--json", cwd=tmp_path).stdout)
    assert st["state"] == "stopped" and st["eta"] is None and st["pending"] > 0, st
    assert f"resume {run_id} --local" in run_cli("status", run_id, "--local", cwd=tmp_path).stdout
    out = run_cli("wait", run_id, "--local", "--no-progress", cwd=tmp_path, timeout=60)
    assert out.returncode == 1
    assert out.stdout.startswith("partial result: ") and "digest: none" in out.stdout
    assert f"run {run_id} stopped" in _one_error(out.stderr)
    again = run_cli("resume", run_id, "--local", cwd=tmp_path, env={"PAUSE": "0"})
    assert again.returncode == 0, again.stderr
    final = json.loads(
        run_cli("result", run_id, "--local", "--format", "json", cwd=tmp_path).stdout
    )
    assert final["complete"] is True and final["digest"] == _serial_digest(exp)


def _tiny_redis(tmp_path: Path, headroom: int) -> tuple[RedisServer, redis.Redis]:
    server = RedisServer(tmp_path / "redis", extra=["--maxmemory-policy", "noeviction"]).start()
    client = redis.Redis.from_url(server.url)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used + headroom)
    return server, client


def test_redis_out_of_memory_mid_run_marks_the_run_failed(
    redis_url: str, tmp_path: Path
) -> None:
    """The run store on a Redis of its own with a tiny maxmemory (the broker elsewhere: a
    Celery worker whose broker refuses a write ends, see docs/bad-input.md): the worker
    whose record is refused marks the run failed, over maxmemory, and the waiter says so."""
    exp = _experiment(tmp_path)
    server, client = _tiny_redis(tmp_path, 1_500_000)
    env = {"BLOB": "100000", "CRYSTALLIZE_DIST_QUEUE": "q-oom",
           "CRYSTALLIZE_DIST_STORE_URL": server.url}
    worker = Worker(redis_url, tmp_path, name="oom", concurrency=1, cwd=tmp_path, env=env)
    try:
        worker.wait_ready()
        out = run_cli("submit", str(exp), "--wait", "--no-progress", "--timeout", "120",
                      broker_url=redis_url, cwd=tmp_path, env=env)
        assert out.returncode == 1, out.stdout + out.stderr
        run_id = out.stdout.splitlines()[0]
        _partial(out.stdout, run_id, "maxmemory")
        line = _one_error(out.stderr)
        assert f"run {run_id} failed: the run store could not be written" in line, line
        assert "cannot take writes" in line and "maxmemory" in line, line
        st = json.loads(run_cli("status", run_id, "--json", broker_url=redis_url, cwd=tmp_path,
                                env=env).stdout)
        assert st["state"] == "failed" and "maxmemory" in st["failure"] and st["eta"] is None
        data = run_cli("result", run_id, "--format", "json", broker_url=redis_url,
                       cwd=tmp_path, env=env)
        assert data.returncode == 1 and json.loads(data.stdout)["complete"] is False
    finally:
        worker.stop()
        client.close()
        server.stop()


def test_redis_turned_read_only_mid_run_is_said_and_waiting_ends(tmp_path: Path) -> None:
    """A read-only replica refuses the records and the mark of the failure too: the person
    waiting is told why the run stands still, and the command exits 1."""
    exp = _experiment(tmp_path)
    server, client = _tiny_redis(tmp_path, 500_000_000)
    env = {"PAUSE": "0.2", "CRYSTALLIZE_DIST_QUEUE": "q-ro",
           "CRYSTALLIZE_DIST_HEARTBEAT_INTERVAL": "1", "CRYSTALLIZE_DIST_HEARTBEAT_GRACE": "3"}
    worker = Worker(server.url, tmp_path, name="ro", concurrency=1, cwd=tmp_path, env=env)
    try:
        worker.wait_ready()
        proc = subprocess.Popen(
            [sys.executable, "-m", "crystallize_dist", "submit", str(exp), "--wait",
             "--no-progress", "--timeout", "120"],
            cwd=tmp_path, env=cli_env(server.url, **env), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        deadline = time.time() + 60
        while client.hlen(next(iter(client.keys("cdist:run:*:records")), b"none")) < 3:
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.1)
        client.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 1, stdout + stderr
        run_id = stdout.splitlines()[0]
        _partial(stdout, run_id, "read-only replica")
        line = _one_error(stderr)
        assert f"run {run_id} failed" in line and "read-only replica" in line, line
    finally:
        client.execute_command("REPLICAOF", "NO", "ONE")
        worker.stop()
        client.close()
        server.stop()
