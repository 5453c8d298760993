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
