"""JSON only, authenticated and encrypted Redis, and passwords that never leak."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from redis_server import RedisServer, free_port
from workers import ROOT, Worker, run_cli

from crystallize_dist.config import Settings
from crystallize_dist.distributed.app import create_app
from crystallize_dist.distributed.store import open_store

QUICKSTART = str(ROOT / "examples" / "quickstart.py")
PASSWORD = "s3cret-Pa55word"


def test_a_pickled_task_message_is_refused_and_nothing_runs(redis_url: str,
                                                            tmp_path: Path) -> None:
    env = {"CRYSTALLIZE_DIST_QUEUE": "q-pickle"}
    run_id = run_cli("submit", QUICKSTART, "-r", "1", broker_url=redis_url, cwd=tmp_path,
                     env=env).stdout.split()[0]
    store = open_store(redis_url)
    manifest = store.manifest(run_id)
    import redis

    redis.Redis.from_url(redis_url).delete("q-pickle")  # only the pickled message remains
    settings = Settings.from_env({}, broker_url=redis_url, queue="q-pickle")
    create_app(settings).send_task("crystallize_dist.run_cells", serializer="pickle",
                                   args=[run_id, [["baseline", 0, manifest["seeds"][0]]]],
                                   queue="q-pickle")
    worker = Worker(redis_url, tmp_path, name="pickle", concurrency=1, cwd=tmp_path, env=env)
    try:
        worker.wait_ready()
        deadline = time.time() + 20
        while "pickle" not in worker.text().split("ready.", 1)[-1] and time.time() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop()
    log = worker.text()
    assert "Refusing to deserialize untrusted content of type pickle" in log
    assert store.attempts(run_id) == {} and list(store.iter_records(run_id)) == []


def _everything_printed_and_stored(broker: str, tmp_path: Path, env: dict[str, str],
                                   workers: list[Worker]) -> str:
    """Submit, wait, read status / result / list; return every text a user or operator sees."""
    texts = []
    out = run_cli("submit", QUICKSTART, "--wait", "--format", "json", "--no-progress",
                  broker_url=broker, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    texts += [out.stdout, out.stderr]
    result = json.loads(out.stdout)
    run_id = result["provenance"]["run_id"]
    local = run_cli("submit", QUICKSTART, "--local", "--format", "json", "--no-progress",
                    cwd=tmp_path)
    assert result["digest"] == json.loads(local.stdout)["digest"]
    for args in (["status", run_id], ["status", run_id, "--json"], ["list"],
                 ["result", run_id, "--format", "json"], ["result", run_id]):
        out = run_cli(*args, broker_url=broker, cwd=tmp_path, env=env)
        assert out.returncode == 0, out.stderr
        texts += [out.stdout, out.stderr]
    store = open_store(broker)
    texts.append(json.dumps(store.manifest(run_id)))
    texts.append(json.dumps(store.state(run_id)))
    texts.append(json.dumps(store.workers(run_id)))
    texts += [json.dumps(r) for r in store.iter_records(run_id)]
    for w in workers:
        w.stop()
        texts.append(w.text())
    return "\n".join(texts)


def test_password_protected_redis_works_and_the_password_never_leaks(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "auth", password=PASSWORD).start()
    try:
        worker = Worker(server.url, tmp_path, name="auth", concurrency=1, cwd=tmp_path)
        worker.wait_ready()
        seen = _everything_printed_and_stored(server.url, tmp_path, {}, [worker])
    finally:
        server.stop()
    assert PASSWORD not in seen
    assert ":**@127.0.0.1" in seen  # the URL is shown, with the password masked


def test_acl_user_urls_work_for_broker_and_store(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "acl", extra=[
        "--user", "default", "off",
        "--user", "alice", "on", f">{PASSWORD}", "~*", "&*", "+@all",
    ]).start()
    url = f"redis://alice:{PASSWORD}@127.0.0.1:{server.port}/0"
    try:
        denied = run_cli("list", broker_url=f"redis://127.0.0.1:{server.port}/0", cwd=tmp_path)
        assert denied.returncode == 1 and PASSWORD not in denied.stderr
        worker = Worker(url, tmp_path, name="alice", concurrency=1, cwd=tmp_path)
        worker.wait_ready()
        seen = _everything_printed_and_stored(url, tmp_path, {}, [worker])
    finally:
        server.stop()
    leaks = [seen[max(0, i - 200):i + 50] for i in range(len(seen)) if seen.startswith(PASSWORD, i)]
    assert not leaks, leaks[:1]
    assert "redis://alice:**@" in seen  # shown, with the password masked


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1."""
    ca_key, ca, key, csr, cert = (folder / n for n in
                                  ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
        "-out", str(ca), "-days", "1", "-subj", "/CN=crystallize-dist test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
        str(csr), "-subj", "/CN=127.0.0.1")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "1", "-extfile", str(ext))
    return ca, cert, key


def test_tls_rediss_urls_work_for_broker_and_store(tmp_path: Path) -> None:
    import shutil

    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test's certificates")
    ca, cert, key = _certificates(tmp_path)
    port = free_port()
    server = RedisServer(tmp_path / "tls", port=port, password=PASSWORD, extra=[
        "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
        "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
    ])
    server.start()
    url = (f"rediss://:{PASSWORD}@127.0.0.1:{port}/0"
           f"?ssl_cert_reqs=required&ssl_ca_certs={ca}")
    try:
        plain = run_cli("list", broker_url=f"redis://:{PASSWORD}@127.0.0.1:{port}/0",
                        cwd=tmp_path)
        assert plain.returncode == 1  # the server speaks only TLS
        worker = Worker(url, tmp_path, name="tls", concurrency=1, cwd=tmp_path)
        worker.wait_ready()
        seen = _everything_printed_and_stored(url, tmp_path, {}, [worker])
    finally:
        server.stop()
    assert PASSWORD not in seen


# --- URLs: checked before anything is dialled, passwords never printed ----------------------
def test_a_password_in_the_query_string_works_and_never_leaks(tmp_path: Path) -> None:
    """``?password=`` is moved into the userinfo (where kombu and redis-py both read it)
    and hidden wherever the URL is shown, also percent-encoded in the query's name."""
    server = RedisServer(tmp_path / "query", password=PASSWORD).start()
    url = f"redis://127.0.0.1:{server.port}/0?pass%77ord={PASSWORD}"
    try:
        worker = Worker(url, tmp_path, name="query", concurrency=1, cwd=tmp_path)
        worker.wait_ready()
        seen = _everything_printed_and_stored(url, tmp_path, {}, [worker])
    finally:
        server.stop()
    assert PASSWORD not in seen


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:1/0?password=Xq7%40Zw9",
        "redis://:Xq7%40Zw9@127.0.0.1:1/0",
        "rediss://127.0.0.1:1/0?ssl_password=Xq7%40Zw9",
    ],
    ids=["query", "userinfo-encoded", "ssl-password"],
)
def test_a_password_is_never_printed_in_any_form(url: str, tmp_path: Path) -> None:
    out = run_cli("list", "--broker", url, cwd=tmp_path, timeout=60)
    assert out.returncode == 1 and "cannot reach Redis" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    for form in ("Xq7", "Zw9", "%40"):
        assert form not in out.stdout + out.stderr, out.stderr


@pytest.mark.parametrize("password", ["Xq7@Zw9", "Xq7#Zw9", "Xq7/Zw9", "Xq7?Zw9"])
def test_an_ambiguous_password_is_refused_before_anything_is_dialled(
    password: str, tmp_path: Path
) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    url = f"redis://user:{password}@127.0.0.1:{port}/0"
    try:
        for args in (["list"], ["worker"], ["submit", QUICKSTART, "--no-progress"]):
            out = run_cli(*args, "--broker", url, cwd=tmp_path, timeout=60)
            lines = out.stderr.strip().splitlines()
            assert out.returncode == 1 and len(lines) == 1, out.stderr
            assert "is ambiguous" in lines[0] and "percent-encode" in lines[0], lines[0]
            assert "Xq7" not in lines[0] and "Zw9" not in lines[0], lines[0]
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody dialled
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("bogus=Xq7&db=2", "unknown query parameter 'bogus'"),
        ("ssl_cert_reqs=required", "TLS parameter 'ssl_cert_reqs', which needs rediss://"),
    ],
)
def test_an_unknown_query_parameter_is_one_line(query: str, says: str, tmp_path: Path) -> None:
    out = run_cli("list", "--broker", f"redis://127.0.0.1:1/0?{query}", cwd=tmp_path)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1 and "Traceback" not in out.stderr
    assert says in lines[0] and "Xq7" not in lines[0], lines[0]


# --- a Redis that may evict keys; a worker without a secret ---------------------------------
def test_an_evicting_redis_and_a_worker_without_a_secret_are_named_at_start(tmp_path: Path) -> None:
    server = RedisServer(
        tmp_path / "lru", extra=["--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"]
    ).start()
    env = {"CRYSTALLIZE_DIST_QUEUE": "q-lru"}
    warning = "has maxmemory-policy 'allkeys-lru': when it is full it evicts keys"
    try:
        out = run_cli("submit", QUICKSTART, "-r", "1", broker_url=server.url, cwd=tmp_path,
                      env=env)
        assert out.returncode == 0, out.stderr
        lines = [line for line in out.stderr.splitlines() if line.startswith("warning:")]
        assert len(lines) == 1 and warning in lines[0], out.stderr
        worker = Worker(server.url, tmp_path, name="lru", concurrency=1, cwd=tmp_path, env=env)
        try:
            worker.wait_ready()
        finally:
            worker.stop()
        log = worker.text()
        assert log.count(warning) == 1, log[:3000]
        assert log.count("this worker has no CRYSTALLIZE_DIST_SECRET") == 1, log[:3000]
        strict = {**env, "CRYSTALLIZE_DIST_REQUIRE_NOEVICTION": "1"}
        runs = open_store(server.url).run_ids()
        for args in (["submit", QUICKSTART, "--no-progress"], ["worker"]):
            out = run_cli(*args, broker_url=server.url, cwd=tmp_path, env=strict, timeout=60)
            lines = out.stderr.strip().splitlines()
            assert out.returncode == 1 and len(lines) == 1, out.stderr
            assert "'allkeys-lru'" in lines[0] and "refusing it" in lines[0], lines[0]
        assert open_store(server.url).run_ids() == runs  # nothing was submitted
    finally:
        server.stop()
