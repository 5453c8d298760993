"""Several machines, simulated with network namespaces: Redis on one "host", a worker on each
of two others, the submitter in the root namespace - all talking over a link-local subnet.

The workers run the exact command of deploy/README.md's walk-through
(``crystallize-dist worker --broker redis://:PASSWORD@HOST:PORT/0 --hostname NAME``) in an
empty folder, with the submitter's copy of the experiment hidden from them (a tmpfs mounted
over it inside their own mount namespace, and the folder renamed after submit), so the code
can only reach them as the bundle. Runs only on Linux as root; CI must run it.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from experiment_sources import hide
from netns import Topology, cannot, require_netns
from workers import ROOT, children, cli_env

from crystallize_dist import SerialExecution, load_experiment
from crystallize_dist import constants as C

SEED = 7
HOSTS = {"w1": "host-b", "w2": "host-c"}


def _cli() -> str:
    script = Path(sys.executable).with_name("crystallize-dist")
    return (
        str(script) if script.exists() else shutil.which("crystallize-dist") or "crystallize-dist"
    )


def _serial_digest(ref: str) -> str:
    exp, _ = load_experiment(ref)
    serial = SerialExecution()
    exp.plugins.append(serial)
    try:
        return exp.run(seed=SEED).digest
    finally:
        exp.plugins.remove(serial)


def _stop(proc: subprocess.Popen[bytes], kids: bool = True) -> None:
    """SIGTERM a process we started (and its pool children), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    pool = children(proc.pid) if kids else []
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    for pid in pool:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.3):
                return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode}") from None
            time.sleep(0.1)
    raise RuntimeError(f"redis-server on {host}:{port} not reachable in {timeout}s")


def _wait_ready(log: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = log.read_text(errors="replace")
        if " ready." in text:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"worker not ready in {timeout}s:\n{log.read_text()[-3000:]}")


def test_two_worker_hosts_run_the_bundle_with_the_serial_digest(tmp_path: Path) -> None:
    require_netns()
    net = Topology(["redis", "w1", "w2"])
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    password = secrets.token_hex(16)
    port = 6379
    try:
        try:
            net.create()
        except subprocess.CalledProcessError as exc:
            cannot(f"cannot create network namespaces: {exc.stderr.strip() or exc}")
        redis_host = net.address("redis")
        broker = f"redis://:{password}@{redis_host}:{port}/0"
        redis_args = ["redis-server", "--bind", redis_host, "--port", str(port)]
        redis_args += ["--requirepass", password, "--save", "", "--appendonly", "no"]
        redis_args += ["--dir", str(tmp_path)]
        server = subprocess.Popen(
            net.exec_args("redis", *redis_args),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(server)
        _wait_port(redis_host, port, server)

        staging = tmp_path / "submitter-src"
        shutil.copytree(ROOT / "examples", staging, ignore=shutil.ignore_patterns(".*cache*"))
        env = cli_env(broker)
        env.pop("CRYSTALLIZE_DIST_BROKER_URL")  # the workers get --broker, as in the docs
        for name, host in HOSTS.items():
            cwd = tmp_path / f"{name}-cwd"
            cwd.mkdir()
            worker = [_cli(), "worker", "--broker", broker, "--hostname", f"{name}@{host}"]
            hide_then_run = (
                f"mount -t tmpfs cdt-hidden {shlex.quote(str(staging))} || exit 97; "
                f"exec {shlex.join(worker)}"
            )
            log = tmp_path / f"{name}.log"
            logs.append(log)
            with log.open("wb") as fh:
                procs.append(
                    subprocess.Popen(
                        net.exec_args(name, "sh", "-c", hide_then_run),
                        cwd=cwd,
                        env=env,
                        stdout=fh,
                        stderr=subprocess.STDOUT,
                    )
                )
        for proc, log in zip(procs[1:], logs, strict=True):
            _wait_ready(log, proc)

        started = time.perf_counter()
        submit_args = [_cli(), "submit", str(staging / "quickstart.py"), "--broker", broker]
        submit_args += ["--wait", "--format", "json", "--seed", str(SEED), "--no-progress"]
        submit_args += ["--timeout", "120"]
        submit = subprocess.Popen(
            submit_args,
            cwd=tmp_path,
            env=cli_env(broker),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        procs.append(submit)
        assert submit.stderr is not None  # with --format json, stdout is the result alone
        run_id = submit.stderr.readline().decode().strip().removeprefix("run ")
        hide(staging)  # after submit, as a user would; the workers never saw it anyway
        out, err = submit.communicate(timeout=180)
        elapsed = time.perf_counter() - started
        worker_logs = "\n".join(log.read_text(errors="replace")[-1500:] for log in logs)
        assert submit.returncode == 0, err.decode() + worker_logs
        result = json.loads(out)
        assert result["provenance"]["run_id"] == run_id
        assert result["digest"] == _serial_digest(str(ROOT / "examples" / "quickstart.py"))
        cells = result["provenance"]["cells"].values()
        assert {c["worker"]["host"] for c in cells} == set(HOSTS.values()), worker_logs
        assert {c["worker"]["node"] for c in cells} == {f"{n}@{h}" for n, h in HOSTS.items()}
        sha = result["provenance"]["options"]["bundle"]["sha256"]
        for name in HOSTS:
            assert (tmp_path / f"{name}-cwd" / C.HOME_DIRNAME / "bundles" / sha).is_dir()
        print(f"multi-host run: {len(cells)} cells on {sorted(HOSTS.values())} in {elapsed:.2f}s")
    finally:
        for proc in reversed(procs):
            _stop(proc)
        leftovers = net.cleanup()
        assert not leftovers, f"could not remove {leftovers}"


BIG_ARTIFACT = """
from crystallize_dist import DataSource, Experiment, Pipeline, PipelineStep

SIZE = 200 * 1024 * 1024


class Zero(DataSource):
    def fetch(self, ctx):
        return 0.0


class Big(PipelineStep):
    def __call__(self, data, ctx):
        head = int(ctx.rng.integers(1 << 62)).to_bytes(8, "big")
        ctx.artifacts.add("big.bin", (head + bytes(range(248))) * (SIZE // 256))
        return data, {"value": 1.0}


experiment = Experiment(Zero(), Pipeline([Big()]), replicates=1, name="big")
"""


def test_a_200_mb_artifact_travels_through_a_shared_folder_not_redis(tmp_path: Path) -> None:
    """A worker on another host puts a 200 MB artifact into the artifact store (a folder both
    hosts mount; CRYSTALLIZE_DIST_ARTIFACT_STORE), never into Redis: the submitter's
    ``--wait`` copies it by its sha256 into its own artifact root; a reader without the
    setting is told where the bytes are and writes nothing."""
    import hashlib

    import redis

    require_netns()
    net = Topology(["redis", "w1"])
    procs: list[subprocess.Popen[bytes]] = []
    shared = tmp_path / "shared"
    shared.mkdir()
    try:
        try:
            net.create()
        except subprocess.CalledProcessError as exc:
            cannot(f"cannot create network namespaces: {exc.stderr.strip() or exc}")
        redis_host = net.address("redis")
        password = secrets.token_hex(16)
        broker = f"redis://:{password}@{redis_host}:6379/0"
        redis_args = ["redis-server", "--bind", redis_host, "--port", "6379", "--save", ""]
        redis_args += ["--requirepass", password, "--appendonly", "no", "--dir", str(tmp_path)]
        server = subprocess.Popen(
            net.exec_args("redis", *redis_args),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(server)
        _wait_port(redis_host, 6379, server)
        env = dict(cli_env(broker), CRYSTALLIZE_DIST_ARTIFACT_STORE=shared.as_uri())
        cwd = tmp_path / "w1-cwd"
        cwd.mkdir()
        log = tmp_path / "w1.log"
        with log.open("wb") as fh:
            worker = [_cli(), "worker", "--hostname", "w1@host-b", "-c", "1"]
            procs.append(
                subprocess.Popen(
                    net.exec_args("w1", *worker),
                    cwd=cwd,
                    env=env,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                )
            )
        _wait_ready(log, procs[-1])
        exp_file = tmp_path / "big_exp.py"
        exp_file.write_text(BIG_ARTIFACT)
        here = tmp_path / "submitter"
        here.mkdir()
        submit = [_cli(), "submit", str(exp_file), "--wait", "--format", "json", "--seed", "3"]
        out = subprocess.run(
            [*submit, "--no-progress", "--timeout", "180"],
            cwd=here,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert out.returncode == 0, out.stderr + log.read_text(errors="replace")[-3000:]
        run_id = out.stderr.splitlines()[0].removeprefix("run ")
        rel = Path("data/big/v0/replicate_0/baseline/Big/big.bin")
        worker_copy, mine = cwd / rel, here / rel
        assert mine.stat().st_size == worker_copy.stat().st_size == 200 * 1024 * 1024
        sha = hashlib.sha256(mine.read_bytes()).hexdigest()
        assert (shared / sha[:2] / sha).stat().st_size == 200 * 1024 * 1024
        assert mine.read_bytes() == worker_copy.read_bytes()
        used = redis.Redis.from_url(broker).info("memory")["used_memory"]
        assert used < 20 * 1024 * 1024, used  # the bytes never went through Redis
        reader = tmp_path / "reader"
        reader.mkdir()
        plain = {k: v for k, v in env.items() if k != "CRYSTALLIZE_DIST_ARTIFACT_STORE"}
        got = subprocess.run(
            [_cli(), "result", run_id],
            cwd=reader,
            env=plain,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert got.returncode == 0, got.stderr
        assert (
            "its bytes are in an artifact store and CRYSTALLIZE_DIST_ARTIFACT_STORE is not set "
            "here; not written" in got.stdout + got.stderr
        )
        assert not (reader / rel).exists()
    finally:
        for proc in reversed(procs):
            _stop(proc)
        for folder in (shared, tmp_path / "w1-cwd" / "data", tmp_path / "submitter" / "data"):
            shutil.rmtree(folder, ignore_errors=True)  # 200 MB each: not kept for later runs
        leftovers = net.cleanup()
        assert not leftovers, f"could not remove {leftovers}"
