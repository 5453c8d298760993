"""The drift guard: a worker whose python / numpy / crystallize_dist differ from the
submitter's stamps the drift on every cell (warn) or records the cell as an
EnvironmentDriftError (refuse); status and the result's provenance show it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from experiment_sources import write_bundled

from crystallize_dist import constants as C
from crystallize_dist.cli import main
from crystallize_dist.config import Settings
from crystallize_dist.distributed import runner as runner_module
from crystallize_dist.distributed.coordinator import submit
from crystallize_dist.distributed.messages import cell_message
from crystallize_dist.distributed.results import load_result
from crystallize_dist.distributed.status import run_status
from crystallize_dist.distributed.store import SQLiteStore
from crystallize_dist.engine.plan import RunPlan

FAKE_NUMPY = "0.0.0+drifted"


def _drifted_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    real = runner_module.worker_environment()
    monkeypatch.setattr(runner_module, "worker_environment", lambda: {**real, "numpy": FAKE_NUMPY})


def _run(tmp_path: Path, policy: str, tag: str) -> tuple[SQLiteStore, str, list[dict[str, Any]]]:
    settings = Settings(home=tmp_path / "home", drift_policy=policy)
    store = SQLiteStore(settings.sqlite_path)
    exp_file = write_bundled(tmp_path / "src", tag)
    sub = submit(str(exp_file), settings=settings, store=store, seed=3, local=True)
    assert sub.manifest["options"]["drift_policy"] == policy
    runner = runner_module.CellRunner(store, settings, node="w1@drifty")
    plan = RunPlan.from_dict(sub.manifest["plan"])
    runner.run(sub.run_id, [cell_message(c) for c in plan.cells()])
    return store, sub.run_id, list(store.iter_records(sub.run_id))


def test_warn_runs_the_cells_and_stamps_the_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _drifted_worker(monkeypatch)
    store, run_id, records = _run(tmp_path, "warn", "driftwarn")
    submitted = store.manifest(run_id)["submitter"]["numpy"]
    assert {r["status"] for r in records} == {"ok"}
    assert all(r["drift"] == {"numpy": [submitted, FAKE_NUMPY]} for r in records)
    assert store.workers(run_id)["w1@drifty"]["numpy"] == FAKE_NUMPY  # versions, once
    assert all(r["worker"]["node"] == "w1@drifty" for r in records)
    status = run_status(store, run_id)
    assert status.extra["drift"] == {"w1@drifty": {"numpy": [submitted, FAKE_NUMPY]}}
    provenance = load_result(store, run_id, verify=False).provenance
    assert provenance["drift"] == {"w1@drifty": {"numpy": [submitted, FAKE_NUMPY]}}
    env = {"CRYSTALLIZE_DIST_HOME": str(tmp_path / "home")}
    shown = CliRunner().invoke(main, ["status", run_id, "--local"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "drift" in shown.output and FAKE_NUMPY in shown.output
    as_json = CliRunner().invoke(main, ["status", run_id, "--local", "--json"], env=env)
    assert json.loads(as_json.output)["drift"]["w1@drifty"]["numpy"][1] == FAKE_NUMPY


def test_refuse_records_every_cell_as_environment_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _drifted_worker(monkeypatch)
    store, run_id, records = _run(tmp_path, "refuse", "driftrefuse")
    assert len(records) == store.manifest(run_id)["n_cells"]
    assert {r["error"]["type"] for r in records} == {"EnvironmentDriftError"}
    assert all("numpy" in r["error"]["message"] for r in records)
    assert all(FAKE_NUMPY in r["error"]["message"] for r in records)
    assert run_status(store, run_id).failed == len(records)


def test_no_drift_means_no_stamp(tmp_path: Path) -> None:
    store, run_id, records = _run(tmp_path, "refuse", "nodrift")
    assert {r["status"] for r in records} == {"ok"}
    assert not any("drift" in r for r in records)
    assert "drift" not in run_status(store, run_id).extra


@pytest.mark.parametrize("how", ["option", "env"])
def test_submit_drift_policy_reaches_the_manifest(tmp_path: Path, how: str) -> None:
    exp_file = write_bundled(tmp_path / "src", f"cli{how}")
    env = {"CRYSTALLIZE_DIST_HOME": str(tmp_path / "home")}
    args = ["submit", str(exp_file), "--local", "-w", "1", "--no-progress", "--format", "json"]
    if how == "option":
        args += ["--drift-policy", "refuse"]
    else:
        env["CRYSTALLIZE_DIST_DRIFT_POLICY"] = "refuse"
    out = CliRunner().invoke(main, args, env=env)
    assert out.exit_code == 0, out.output
    run_id = json.loads(out.stdout)["provenance"]["run_id"]
    store = SQLiteStore(tmp_path / "home" / C.SQLITE_FILENAME)
    assert store.manifest(run_id)["options"]["drift_policy"] == "refuse"
