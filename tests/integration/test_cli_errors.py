"""Bad input at the CLI: one line on stderr that names the culprit, a non-zero exit code, no
traceback, no secret, and no run left behind (CLI subprocesses, real redis-server)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_server import RedisServer
from workers import ROOT, run_cli

from crystallize_dist.distributed.store import open_store

QUICKSTART = str(ROOT / "examples" / "quickstart.py")
SECRET = "s3cret"


def one_line_error(out: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Assert a one-line ``error: ...`` on stderr naming every needle; return it."""
    assert out.returncode != 0, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in out.stderr
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"CRYSTALLIZE_DIST_HOME": str(tmp_path / "home")}


def submit(
    ref: str, broker: str, cwd: Path, env: dict[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    return run_cli("submit", ref, "--no-progress", *extra, broker_url=broker, cwd=cwd, env=env)


def assert_no_run(redis_url: str) -> None:
    store = open_store(redis_url)
    try:
        assert store.run_ids() == []
    finally:
        store.close()


# --- the broker ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["submit", QUICKSTART, "--no-progress"],
        ["status", "some-run"],
        ["result", "some-run"],
        ["list"],
        ["cancel", "some-run"],
        ["resume", "some-run"],
        ["worker"],
        ["workers"],
        ["report", "some-run", "-o", "r.html"],
    ],
    ids=lambda a: a[0],
)
def test_unreachable_broker_is_named_with_its_password_redacted(
    args: list[str], tmp_path: Path, env: dict[str, str]
) -> None:
    url = f"redis://user:{SECRET}@127.0.0.1:1/0"
    out = run_cli(*args, "--broker", url, cwd=tmp_path, env=env, timeout=60)
    one_line_error(out, "cannot reach Redis", "redis://user:***@127.0.0.1:1/0")
    assert SECRET not in out.stdout + out.stderr
    assert out.stdout == ""


@pytest.fixture
def not_redis() -> Iterator[dict[str, int]]:
    """Two loopback ports that accept connections but are not Redis: one answers in
    another protocol (HTTP), one never answers at all."""
    import socket
    import threading

    def serve(sock: socket.socket, reply: bytes | None) -> None:
        held = []
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:  # closed: the test is over
                break
            held.append(conn)
            if reply is not None:
                conn.recv(1024)
                conn.sendall(reply)
        for conn in held:
            conn.close()

    socks, ports = [], {}
    for name, reply in (("http", b"<html>hello</html>\r\n"), ("silent", None)):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        threading.Thread(target=serve, args=(sock, reply), daemon=True).start()
        socks.append(sock)
        ports[name] = sock.getsockname()[1]
    yield ports
    for sock in socks:
        sock.close()


@pytest.mark.parametrize("args", [["submit", QUICKSTART, "--no-progress"], ["list"],
                                  ["status", "some-run"], ["worker"], ["workers"]],
                         ids=lambda a: a[0])
@pytest.mark.parametrize(("server", "needle"), [("http", "does not answer in the Redis protocol"),
                                                ("silent", "did not answer in time")])
def test_a_server_that_is_not_redis_is_one_line_and_no_hang(
    args: list[str], server: str, needle: str, not_redis: dict[str, int], tmp_path: Path,
    env: dict[str, str],
) -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{not_redis[server]}/0"
    out = run_cli(*args, "--broker", url, cwd=tmp_path, env=env, timeout=60)
    one_line_error(out, needle, "is it a Redis server", f"127.0.0.1:{not_redis[server]}")
    assert SECRET not in out.stdout + out.stderr


def test_no_broker_given_and_none_on_localhost_says_how_to_choose(tmp_path: Path) -> None:
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if k != "CRYSTALLIZE_DIST_BROKER_URL"}
    env["CRYSTALLIZE_DIST_HOME"] = str(tmp_path / "home")
    out = subprocess.run([sys.executable, "-m", "crystallize_dist", "list"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=60)
    if out.returncode != 0 or "localhost:6379" in out.stderr:  # else a Redis runs there
        one_line_error(out, "localhost:6379", "--broker URL", "--local")


def test_broker_url_from_the_environment_is_redacted_too(tmp_path: Path) -> None:
    out = run_cli("list", broker_url=f"redis://:{SECRET}@127.0.0.1:1/0", cwd=tmp_path)
    one_line_error(out, "cannot reach Redis", "127.0.0.1:1")
    assert SECRET not in out.stdout + out.stderr


@pytest.mark.parametrize(
    ("url", "needles"),
    [
        (f"amqp://guest:{SECRET}@localhost:5672//", ["broker URL", "amqp", "redis://"]),
        ("memory://", ["broker URL", "memory", "redis://"]),
        ("localhost:6379", ["broker URL", "(none)", "redis://"]),
        (f"redis://u:{SECRET}@host:notaport/0", ["broker URL", "malformed", "port"]),
    ],
    ids=["amqp", "memory", "no-scheme", "bad-port"],
)
def test_broker_url_with_a_bad_scheme_or_shape(
    url: str, needles: list[str], tmp_path: Path, env: dict[str, str]
) -> None:
    out = submit(QUICKSTART, url, tmp_path, env)
    one_line_error(out, *needles)
    assert SECRET not in out.stdout + out.stderr


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A second redis-server that requires the password 'right'."""
    server = RedisServer(tmp_path / "locked", password="right").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("args", [["submit", QUICKSTART, "--no-progress"], ["list"], ["worker"]])
def test_wrong_redis_password(
    args: list[str], locked_redis: RedisServer, tmp_path: Path, env: dict[str, str]
) -> None:
    url = f"redis://:wrong-{SECRET}@127.0.0.1:{locked_redis.port}/0"
    out = run_cli(*args, "--broker", url, cwd=tmp_path, env=env, timeout=60)
    one_line_error(out, "refused the credentials", f"127.0.0.1:{locked_redis.port}", "***")
    assert SECRET not in out.stdout + out.stderr
    assert out.stdout == ""


def test_missing_redis_password(
    locked_redis: RedisServer, tmp_path: Path, env: dict[str, str]
) -> None:
    url = f"redis://127.0.0.1:{locked_redis.port}/0"
    out = run_cli("status", "some-run", "--broker", url, cwd=tmp_path, env=env)
    one_line_error(out, f"127.0.0.1:{locked_redis.port}", "credentials")


# --- unknown run ids ---------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["status", "result", "cancel", "resume"])
def test_unknown_run_id(command: str, redis_url: str, tmp_path: Path, env: dict[str, str]) -> None:
    out = run_cli(command, "no-such-run", broker_url=redis_url, cwd=tmp_path, env=env)
    one_line_error(out, "no run 'no-such-run'")
    local = run_cli(command, "no-such-run", "--local", cwd=tmp_path, env=env)
    one_line_error(local, "no run 'no-such-run'", "runs.sqlite3")


def test_unknown_run_id_json_status(redis_url: str, tmp_path: Path, env: dict[str, str]) -> None:
    out = run_cli("status", "nope-42", "--json", broker_url=redis_url, cwd=tmp_path, env=env)
    one_line_error(out, "no run 'nope-42'")
    assert out.stdout == ""


# --- experiments that do not load --------------------------------------------------------------
def test_module_that_does_not_import(redis_url: str, tmp_path: Path, env: dict[str, str]) -> None:
    out = submit("no_such_pkg.mod:experiment", redis_url, tmp_path, env)
    one_line_error(out, "no_such_pkg.mod", "ModuleNotFoundError")
    assert out.stdout == ""
    assert_no_run(redis_url)


def test_file_with_a_syntax_error(redis_url: str, tmp_path: Path, env: dict[str, str]) -> None:
    bad = tmp_path / "broken_exp.py"
    bad.write_text("from crystallize_dist import Experiment\n\nexperiment = Experiment(\n")
    out = submit(str(bad), redis_url, tmp_path, env)
    line = one_line_error(out, "broken_exp.py:3", "SyntaxError")
    assert str(bad) in line
    assert_no_run(redis_url)


def test_file_raising_import_error(redis_url: str, tmp_path: Path, env: dict[str, str]) -> None:
    bad = tmp_path / "needs_gpu.py"
    bad.write_text("import os\n\nraise ImportError('this experiment needs the cuda extra')\n")
    out = submit(f"{bad}:experiment", redis_url, tmp_path, env)
    one_line_error(out, "needs_gpu.py", "ImportError", "needs the cuda extra")
    assert_no_run(redis_url)


def test_file_importing_a_missing_module(
    redis_url: str, tmp_path: Path, env: dict[str, str]
) -> None:
    bad = tmp_path / "uses_missing.py"
    bad.write_text("import not_installed_anywhere_xyz\n")
    out = submit(str(bad), redis_url, tmp_path, env)
    one_line_error(out, "uses_missing.py", "ModuleNotFoundError", "not_installed_anywhere_xyz")


@pytest.mark.parametrize(
    ("source", "attr", "needles"),
    [
        ("experiment = 42\n", "experiment", ["is a int", "not an Experiment"]),
        ("def experiment():\n    return 'hi'\n", "experiment", ["returned a str", "Experiment"]),
        ("experiment = None\n", "other", ["has no attribute 'other'"]),
        (
            "def experiment():\n    raise RuntimeError('boom in factory')\n",
            "experiment",
            ["calling it failed", "RuntimeError: boom in factory"],
        ),
    ],
    ids=["int", "factory-returns-str", "missing-attr", "factory-raises"],
)
def test_attribute_that_is_not_an_experiment(
    source: str,
    attr: str,
    needles: list[str],
    redis_url: str,
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    path = tmp_path / "not_exp.py"
    path.write_text(source)
    out = submit(f"{path}:{attr}", redis_url, tmp_path, env)
    one_line_error(out, "not_exp.py", *needles)
    assert_no_run(redis_url)


def test_example_class_is_not_an_experiment(
    redis_url: str, tmp_path: Path, env: dict[str, str]
) -> None:
    out = submit(f"{QUICKSTART}:AddRandomStep", redis_url, tmp_path, env)
    one_line_error(out, "quickstart.py:AddRandomStep", "AddRandomStep", "not an Experiment")


# --- run options -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--treatment", "nope"], ["unknown treatment 'nope'", "shifted"]),
        (["--treatment", "shifted", "-t", "bogus"], ["unknown treatment 'bogus'"]),
        (["--replicates", "0"], ["replicates", "got 0"]),
        (["--replicates", "-3"], ["replicates", "got -3"]),
        (["--seed", "4294967296"], ["seed", "4294967296", "2**32-1"]),
        (["--seed", "-1"], ["seed", "-1", "2**32-1"]),
        (["--cells-per-task", "0"], ["--cells-per-task", "got 0"]),
        (["--cells-per-task", "many"], ["--cells-per-task", "'many'"]),
        (["--workers", "0", "--local"], ["--workers", "got 0"]),
    ],
    ids=lambda v: "_".join(v) if isinstance(v, list) and v and v[0].startswith("-") else None,
)
def test_bad_run_option(
    extra: list[str], needles: list[str], redis_url: str, tmp_path: Path, env: dict[str, str]
) -> None:
    out = submit(QUICKSTART, redis_url, tmp_path, env, *extra)
    one_line_error(out, *needles)
    assert out.stdout == ""
    assert_no_run(redis_url)
    local = run_cli("list", "--local", cwd=tmp_path, env=env)
    assert local.returncode == 0 and "quickstart" not in local.stdout


def test_bad_option_from_its_environment_variable(
    redis_url: str, tmp_path: Path, env: dict[str, str]
) -> None:
    out = submit(QUICKSTART, redis_url, tmp_path, {**env, "CRYSTALLIZE_DIST_REPLICATES": "-3"})
    one_line_error(out, "replicates", "-3")
    out = submit(QUICKSTART, redis_url, tmp_path, {**env, "CRYSTALLIZE_DIST_SEED": "-1"})
    one_line_error(out, "seed", "-1")
    short_grace = {**env, "CRYSTALLIZE_DIST_HEARTBEAT_GRACE": "4"}  # under two intervals of 5 s
    out = submit(QUICKSTART, redis_url, tmp_path, short_grace)
    one_line_error(out, "heartbeat_grace (4s) must be at least twice heartbeat_interval (5s")
    worker = run_cli("worker", broker_url=redis_url, cwd=tmp_path, env=short_grace, timeout=60)
    one_line_error(worker, "heartbeat_grace (4s)")
    assert_no_run(redis_url)
