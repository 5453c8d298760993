"""Scaling out on one machine: workers that do not have the experiment's code run it from
the submitted bundle, refuse a tampered one, and ``replay`` re-checks finished runs.

Each worker starts in an empty folder *after* the experiment's folder was moved away, so the
only way it can get the code is the bundle in Redis.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import redis
from experiment_sources import MARKER_ENV, hide, write_bundled, write_clock
from workers import ROOT, Worker, run_cli

from crystallize_dist import SerialExecution, load_experiment
from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.results import load_result
from crystallize_dist.distributed.store import open_store
from crystallize_dist.distributed.waiting import wait_for

SEED = 7
SECRET = "integration-secret"


def serial_digest(ref: str) -> str:
    exp, _ = load_experiment(ref)
    serial = SerialExecution()
    exp.plugins.append(serial)
    try:
        return exp.run(seed=SEED).digest
    finally:
        exp.plugins.remove(serial)


def start_worker(broker: str, tmp_path: Path, name: str, queue: str, **env: str) -> Worker:
    cwd = tmp_path / f"{name}-cwd"
    cwd.mkdir()
    env = {"CRYSTALLIZE_DIST_QUEUE": queue, **env}
    return Worker(broker, tmp_path, name=name, concurrency=2, cwd=cwd, env=env).wait_ready()


def submit(broker: str, ref: str, cwd: Path, queue: str, *extra: str, **env: str) -> str:
    cwd.mkdir(exist_ok=True)
    out = run_cli(
        "submit",
        ref,
        "--seed",
        str(SEED),
        "--no-progress",
        *extra,
        broker_url=broker,
        cwd=cwd,
        env={"CRYSTALLIZE_DIST_QUEUE": queue, **env},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[0]


@pytest.mark.parametrize("example", ["quickstart.py", "folder_experiment"])
def test_a_worker_without_the_code_runs_the_bundle(
    example: str, redis_url: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "examples", src, ignore=shutil.ignore_patterns(".*cache*"))
    queue = f"q-bundle-{example}"
    started = time.perf_counter()
    run_id = submit(redis_url, str(src / example), tmp_path / "submitter", queue)
    submit_s = time.perf_counter() - started
    hide(src)
    worker = start_worker(redis_url, tmp_path, "nocode", queue)
    try:
        store = open_store(redis_url)
        wait_for(store, run_id, timeout=120)
        settings = Settings(home=tmp_path / "reader-home")
        result = load_result(store, run_id, settings=settings)
        assert not result.errors, worker.text()[-3000:]
        assert result.digest == serial_digest(str(ROOT / "examples" / example))
        bundle = store.manifest(run_id)["options"]["bundle"]
        assert (tmp_path / "nocode-cwd" / C.HOME_DIRNAME / "bundles" / bundle["sha256"]).is_dir()
        print(f"bundle {bundle['size']} bytes, {bundle['files']} files, submit {submit_s:.2f}s")
    finally:
        worker.stop()


def test_a_tampered_bundle_is_refused_and_never_imported(redis_url: str, tmp_path: Path) -> None:
    queue = "q-tampered"
    secret = {"CRYSTALLIZE_DIST_SECRET": SECRET}
    exp_file = write_bundled(tmp_path / "src", "tampered")
    run_id = submit(redis_url, str(exp_file), tmp_path / "submitter", queue, **secret)
    store = open_store(redis_url)
    sha = store.manifest(run_id)["options"]["bundle"]["sha256"]
    client = redis.Redis.from_url(redis_url)
    blob = bytearray(client.get(C.key_bundle(sha)) or b"")
    assert blob
    blob[len(blob) // 2] ^= 0x01
    client.set(C.key_bundle(sha), bytes(blob))
    hide(tmp_path / "src")
    marker = tmp_path / "imported.marker"
    worker = start_worker(
        redis_url, tmp_path, "signed", queue, **secret, **{MARKER_ENV: str(marker)}
    )
    try:
        status = wait_for(store, run_id, timeout=120)
        records = list(store.iter_records(run_id))
        assert status.failed == status.total == len(records)
        assert {r["error"]["type"] for r in records} == {"BundleError"}
        assert all("tampered" in r["error"]["message"] for r in records)
        assert not marker.exists()
        # control: the same code submitted again (the blob is rewritten intact) does run there
        exp_file = write_bundled(tmp_path / "src", "tampered")
        again = submit(redis_url, str(exp_file), tmp_path / "submitter", queue, **secret)
        assert store.manifest(again)["options"]["bundle"]["sha256"] == sha
        hide(tmp_path / "src")
        assert wait_for(store, again, timeout=120).failed == 0, worker.text()[-3000:]
        assert marker.exists()
    finally:
        worker.stop()


def test_replay_matches_a_seeded_run_and_catches_a_clock(redis_url: str, tmp_path: Path) -> None:
    queue = "q-replay"
    worker = start_worker(redis_url, tmp_path, "replayer", queue)
    try:
        src = tmp_path / "src"
        shutil.copytree(ROOT / "examples", src, ignore=shutil.ignore_patterns(".*cache*"))
        seeded = submit(redis_url, str(src / "quickstart.py"), tmp_path / "sub", queue, "--wait")
        clock = submit(
            redis_url, str(write_clock(src, "replay")), tmp_path / "sub", queue, "--wait"
        )
    finally:
        worker.stop()
    hide(src)  # replay gets the code from the bundle too
    reader = tmp_path / "reader"
    reader.mkdir()
    good = run_cli("replay", seeded, "--all", broker_url=redis_url, cwd=reader)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.strip() == "40 matches, 0 mismatches"
    first = run_cli("replay", seeded, "--cells", "5", broker_url=redis_url, cwd=reader)
    assert first.returncode == 0 and first.stdout.strip() == "5 matches, 0 mismatches"
    bad = run_cli("replay", clock, "--all", broker_url=redis_url, cwd=reader)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    lines = bad.stdout.strip().splitlines()
    assert lines[-1] == "0 matches, 3 mismatches"
    assert all(line.startswith("mismatch baseline:") for line in lines[:-1])
    assert "3 of 3 replayed cells differ" in bad.stderr
    assert json.loads(run_cli("status", clock, "--json", broker_url=redis_url).stdout)["done"] == 3
