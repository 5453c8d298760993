"""Bad input gets a clear one-line error and loses nothing.

With tests/integration/test_cli_errors.py and tests/core/test_bad_input.py this is the table
in docs/bad-input.md: every case names a test, and a test checks the table stays true.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from workers import ROOT, Worker, run_cli

from crystallize_dist.config import Settings
from crystallize_dist.distributed.app import create_app
from crystallize_dist.distributed.results import load_result
from crystallize_dist.distributed.store import RunStore, open_store
from crystallize_dist.distributed.waiting import wait_for

BAD = str(Path(__file__).with_name("bad_experiments.py"))


def one_line_error(out: Any) -> str:
    assert out.returncode != 0, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return str(lines[0])


def folder(tmp_path: Path, config: str) -> Path:
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "datasources.py").write_text(
        "from crystallize_dist import data_source\n\n@data_source\n"
        "def numbers(ctx):\n    return 1.0\n"
    )
    (exp / "steps.py").write_text(
        "from crystallize_dist import pipeline_step\n\n@pipeline_step()\n"
        "def add(data, ctx, delta: float = 1.0):\n    return data + delta, {'y': data + delta}\n"
    )
    (exp / "config.yaml").write_text(config)
    return exp


def test_malformed_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    exp = folder(tmp_path, "name: x\ndatasource: numbers\nsteps: [add\n  - oops: :\n")
    msg = one_line_error(run_cli("submit", str(exp), "--local", cwd=tmp_path))
    assert "config.yaml:" in msg and "malformed YAML" in msg


def test_config_key_that_does_not_exist(tmp_path: Path) -> None:
    exp = folder(tmp_path, "datasource: numbers\nsteps: [add]\nreplicats: 3\n")
    msg = one_line_error(run_cli("submit", str(exp), "--local", cwd=tmp_path))
    assert "config.yaml" in msg and "unknown key 'replicats'" in msg


def test_config_step_that_does_not_exist(tmp_path: Path) -> None:
    exp = folder(tmp_path, "datasource: numbers\nsteps: [add, multiply]\n")
    msg = one_line_error(run_cli("submit", str(exp), "--local", cwd=tmp_path))
    assert "'multiply' is not defined in steps.py" in msg


def _run(broker: str, tmp_path: Path, mode: str, **env: str) -> tuple[str, RunStore]:
    env = {"BAD_MODE": mode, "CRYSTALLIZE_DIST_QUEUE": f"q-{mode}", **env}
    out = run_cli("submit", BAD, broker_url=broker, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.split()[0]
    worker = Worker(broker, tmp_path, name=mode, concurrency=1, cwd=tmp_path, env=env)
    try:
        worker.wait_ready()
        store = open_store(broker)
        wait_for(store, run_id, timeout=60)
    finally:
        worker.stop()
    return run_id, store


def _only_replicate_1_failed(store: RunStore, run_id: str, error_type: str) -> dict[str, Any]:
    recs = {r["replicate"]: r for r in store.iter_records(run_id)}
    assert sorted(recs) == [0, 1, 2, 3]
    for rep, rec in recs.items():
        assert (rec["status"] == "ok") == (rep != 1), rec
    err: dict[str, Any] = recs[1]["error"]
    assert err["type"] == error_type, err
    assert "\n" not in err["message"]
    return err


@pytest.mark.parametrize(
    ("mode", "error_type", "needles"),
    [
        ("raise-in-fetch", "ValueError", ["cannot read replicate 1"]),
        ("unserialisable", "MetricValueError", ["metric 'model'", "object", "JSON"]),
        ("huge-list", "RecordTooLargeError", ["MB limit", "'trace'"]),
        ("huge-int", "MetricValueError", ["metric 'count'", "integer"]),
    ],
)
def test_a_misbehaving_cell_is_a_recorded_error_and_the_others_finish(
    mode: str, error_type: str, needles: list[str], redis_url: str, tmp_path: Path
) -> None:
    run_id, store = _run(redis_url, tmp_path, mode, CRYSTALLIZE_DIST_MAX_RECORD_BYTES="500000")
    err = _only_replicate_1_failed(store, run_id, error_type)
    for needle in needles:
        assert needle in err["message"], err["message"]
    out = run_cli("result", run_id, broker_url=redis_url, cwd=tmp_path)
    assert out.returncode == 0 and "baseline_rep_1" in out.stdout


def test_resume_refuses_changed_code_unless_allowed(redis_url: str, tmp_path: Path) -> None:
    src = tmp_path / "changing.py"
    shutil.copy(BAD, src)
    env = {"CRYSTALLIZE_DIST_QUEUE": "q-unused"}
    run_id = run_cli(
        "submit", str(src), broker_url=redis_url, cwd=tmp_path, env=env
    ).stdout.split()[0]
    src.write_text(src.read_text().replace("replicates=4", "replicates=4  # edited"))
    src.write_text(src.read_text().replace("return data\n", "return data + 0.0\n"))
    msg = one_line_error(run_cli("resume", run_id, broker_url=redis_url, cwd=tmp_path, env=env))
    assert "code changed since it was submitted" in msg and "--allow-drift" in msg
    out = run_cli("resume", run_id, "--allow-drift", broker_url=redis_url, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    state = open_store(redis_url).state(run_id)
    assert state["allow_drift"]["submitted"] != state["allow_drift"]["resumed_with"]


@pytest.mark.parametrize(
    ("args", "kwargs", "log"),
    [
        (None, {"evil": 1}, "unknown fields: evil"),
        ([["baseline", "0", 1]], {}, "replicate must be an int"),
        ([["baseline", 0, 12345]], {}, "differs from the manifest"),
        ([["nope", 0, 1]], {}, "unknown condition"),
        ("not-a-list", {}, "cells must be a non-empty list"),
    ],
    ids=["unknown-field", "wrong-type", "wrong-seed", "unknown-condition", "not-a-list"],
)
def test_a_malformed_task_message_is_refused_before_any_code_runs(
    args: Any, kwargs: dict[str, Any], log: str, redis_url: str, tmp_path: Path
) -> None:
    env = {"CRYSTALLIZE_DIST_QUEUE": "q-msg"}
    run_id = run_cli(
        "submit", BAD, "--replicates", "1", broker_url=redis_url, cwd=tmp_path, env=env
    ).stdout.split()[0]
    store = open_store(redis_url)
    seed = store.manifest(run_id)["seeds"][0]
    from redis import Redis

    Redis.from_url(redis_url).delete("q-msg")  # drop the real cell's message
    cells = args if args is not None else [["baseline", 0, seed]]
    settings = Settings.from_env({}, broker_url=redis_url, queue="q-msg")
    create_app(settings).send_task(
        "crystallize_dist.run_cells", args=[run_id, cells], kwargs=kwargs, queue="q-msg"
    )
    worker = Worker(redis_url, tmp_path, name="msg", concurrency=1, cwd=tmp_path, env=env)
    try:
        worker.wait_ready()
        deadline = time.time() + 20
        while log not in worker.text() and time.time() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop()
    assert log in worker.text()
    assert store.attempts(run_id) == {} and list(store.iter_records(run_id)) == []


def test_a_message_for_a_run_that_does_not_exist_is_dropped(redis_url: str, tmp_path: Path) -> None:
    settings = Settings.from_env({}, broker_url=redis_url, queue="q-ghost")
    create_app(settings).send_task(
        "crystallize_dist.run_cells", args=["ghost-run", [["baseline", 0, 1]]], queue="q-ghost"
    )
    worker = Worker(
        redis_url,
        tmp_path,
        name="ghost",
        concurrency=1,
        cwd=tmp_path,
        env={"CRYSTALLIZE_DIST_QUEUE": "q-ghost"},
    )
    try:
        worker.wait_ready()
        deadline = time.time() + 20
        while "no run 'ghost-run'" not in worker.text() and time.time() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop()
    assert "no run 'ghost-run'" in worker.text()


def test_a_corrupted_record_is_reported_and_the_rest_is_intact(
    redis_url: str, tmp_path: Path
) -> None:
    run_id, store = _run(redis_url, tmp_path, "none")
    before = {r["replicate"]: r for r in store.iter_records(run_id)}
    store.r.hset(f"cdist:run:{{{run_id}}}:records", "baseline:2", b"\xff{broken")
    out = run_cli("result", run_id, "--format", "json", broker_url=redis_url, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert "CorruptRecordError" in json.dumps(result["error_details"]["baseline_rep_2"])
    for rep in (0, 1, 3):
        assert store.get_record(run_id, "baseline", rep) == {
            k: v for k, v in before[rep].items() if k not in ("attempts", "duplicates")
        }
    env = {"BAD_MODE": "none", "CRYSTALLIZE_DIST_QUEUE": "q-none"}
    worker = Worker(redis_url, tmp_path, name="fix", concurrency=1, cwd=tmp_path, env=env)
    try:
        worker.wait_ready()
        out = run_cli(
            "resume",
            run_id,
            "--retry-failed",
            "--wait",
            broker_url=redis_url,
            cwd=tmp_path,
            env=env,
        )
        assert out.returncode == 0, out.stderr
    finally:
        worker.stop()
    assert not load_result(store, run_id).errors


def test_the_bad_input_table_names_real_tests() -> None:
    doc = (ROOT / "docs" / "bad-input.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| ") and "::" in line]
    assert len(rows) >= 20
    for row in rows:
        for ref in re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", row):
            path, name = ref
            assert re.search(rf"def {name}\b", (ROOT / path).read_text()), ref
