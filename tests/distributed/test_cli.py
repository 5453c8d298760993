"""The CLI in-process (click's CliRunner): ``--local`` runs on the embedded SQLite store, and
status / result / list / cancel against a real redis-server for a run made by the coordinator.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from crystallize_dist import SerialExecution, load_experiment
from crystallize_dist.cli import main
from crystallize_dist.config import Settings
from crystallize_dist.distributed import coordinator
from crystallize_dist.distributed.local import run_local
from crystallize_dist.distributed.store import SQLiteStore, open_store

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "examples" / "quickstart.py")
RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
DIGEST = re.compile(r"digest: ([0-9a-f]{64})")
CSV_HEADER = ["condition", "metric", "n", "mean", "std", "ci_low", "ci_high"]
_serial: dict[tuple[int, int | None], str] = {}


def serial_digest(seed: int, replicates: int | None = None) -> str:
    """The digest of a SerialExecution run of the quickstart (the reference bytes)."""
    if (seed, replicates) not in _serial:
        exp, _ = load_experiment(QUICKSTART)
        serial = SerialExecution()
        exp.plugins.append(serial)
        try:
            _serial[seed, replicates] = exp.run(seed=seed, replicates=replicates).digest
        finally:
            exp.plugins.remove(serial)
    return _serial[seed, replicates]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean CRYSTALLIZE_DIST_* environment with its home under tmp_path; cwd = tmp_path."""
    for var in list(os.environ):
        if var.startswith("CRYSTALLIZE_DIST_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("CRYSTALLIZE_DIST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")  # rich: tables are never truncated
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def cli(*args: str, code: int = 0, **env: Any) -> Result:
    """Invoke the CLI in this process; assert its exit code."""
    res = CliRunner().invoke(main, list(args), env=env or None, catch_exceptions=True)
    if res.exit_code != code:
        import traceback

        tb = "".join(traceback.format_exception(*res.exc_info)) if res.exc_info else ""
        raise AssertionError(
            f"exit {res.exit_code} != {code} for {args}\nstdout:\n{res.stdout}\n"
            f"stderr:\n{res.stderr}\n{tb}"
        )
    return res


def submit_local(*extra: str, **env: Any) -> tuple[str, Result]:
    res = cli("submit", QUICKSTART, "--local", "--no-progress", *extra, **env)
    run_id = res.stdout.splitlines()[0]
    assert RUN_ID.match(run_id), res.stdout
    return run_id, res


def digest_of(text: str) -> str:
    found = DIGEST.search(text)
    assert found, text
    return found.group(1)


def local_store(home: Path) -> SQLiteStore:
    return SQLiteStore(Settings(home=home).sqlite_path)


# --- submit --local ------------------------------------------------------------------------
def test_submit_local_prints_run_id_then_summary_table(home: Path) -> None:
    # progress stays on (the default): the bar goes to stderr, never before the run id
    res = cli("submit", QUICKSTART, "--local", "--workers", "1", "--seed", "3")
    lines = res.stdout.splitlines()
    assert RUN_ID.match(lines[0]), res.stdout
    assert local_store(home).run_ids() == [lines[0]]
    header = next(line for line in lines if "condition" in line)
    for col in ("metric", "n", "mean", "std", "95% CI"):
        assert col in header, res.stdout
    rows = [line for line in lines if "rand" in line]
    assert [r.split()[1] for r in rows] == ["baseline", "shifted"], res.stdout
    assert all(" 20 " in r for r in rows), res.stdout
    assert digest_of(res.stdout) == serial_digest(3)


def test_status_table_and_json(home: Path) -> None:
    run_id, _ = submit_local("--workers", "1", "--seed", "3")
    table = cli("status", run_id, "--local").stdout
    assert run_id in table and "quickstart" in table
    assert "state: finished" in table
    assert re.search(r"total\s*│\s*40\s*│\s*0\s*│\s*0", table), table
    st = json.loads(cli("status", run_id, "--local", "--json").stdout)
    assert st["run_id"] == run_id
    assert (st["total"], st["done"], st["failed"], st["pending"]) == (40, 40, 0, 0)
    assert st["per_condition"] == {
        "baseline": {"ok": 20, "error": 0, "pending": 0},
        "shifted": {"ok": 20, "error": 0, "pending": 0},
    }
    assert st["finished"] is True and st["cancelled"] is False
    assert st["eta"] is None and st["attempts"] == 40 and len(st["workers"]) == 1


def test_result_formats_and_output_file(home: Path, tmp_path: Path) -> None:
    run_id, _ = submit_local("--workers", "1", "--seed", "3")
    expected = serial_digest(3)
    table = cli("result", run_id, "--local", "--format", "table").stdout
    assert digest_of(table) == expected and "95% CI" in table
    assert cli("result", run_id, "--local").stdout == table  # table is the default
    data = json.loads(cli("result", run_id, "--local", "--format", "json").stdout)
    assert data["digest"] == expected and data["provenance"]["run_id"] == run_id
    rows = list(csv.reader(io.StringIO(cli("result", run_id, "--local", "--format", "csv").stdout)))
    assert rows[0] == CSV_HEADER
    assert [(r[0], r[1], r[2]) for r in rows[1:]] == [
        ("baseline", "rand", "20"),
        ("shifted", "rand", "20"),
    ]
    for fmt in ("table", "json", "csv"):
        out = tmp_path / f"result.{fmt}"
        res = cli("result", run_id, "--local", "--format", fmt, "--output", str(out))
        assert res.stdout == "", res.stdout
        text = out.read_text()
        if fmt == "json":
            assert json.loads(text)["digest"] == expected
        elif fmt == "csv":
            assert text.splitlines()[0] == ",".join(CSV_HEADER)
        else:
            assert digest_of(text) == expected and "95% CI" in text


def test_list_local_newest_first(home: Path) -> None:
    assert "Runs" in cli("list", "--local").stdout  # an empty store lists nothing
    first, _ = submit_local("--workers", "1", "--seed", "1", "--replicates", "2")
    second, _ = submit_local("--workers", "1", "--seed", "2", "--replicates", "2")
    out = cli("list", "--local").stdout
    assert out.index(second) < out.index(first), out
    for run_id in (first, second):
        row = next(line for line in out.splitlines() if run_id in line)
        assert "quickstart" in row and "finished" in row and "4" in row, row
    newest = cli("list", "--local", "--limit", "1").stdout
    assert second in newest and first not in newest, newest
    narrow = cli("list", "--local", COLUMNS="40").stdout  # e.g. piped: ids stay whole
    assert first in narrow and second in narrow, narrow


def test_cancel_local_then_resume_runs_every_cell(home: Path) -> None:
    settings = Settings.from_env()
    store = local_store(home)
    sub = coordinator.submit(
        QUICKSTART, settings=settings, store=store, seed=3, local=True, workers=1
    )
    run_id = sub.run_id
    res = cli("cancel", run_id, "--local")
    assert res.stdout.strip() == f"cancelled {run_id}"
    # a cancelled run starts no cell
    from crystallize_dist.engine.plan import RunPlan

    cells = list(RunPlan.from_dict(sub.manifest["plan"]).cells())
    run_local(run_id, cells, store=store, settings=settings, workers=1)
    st = json.loads(cli("status", run_id, "--local", "--json").stdout)
    assert st["cancelled"] is True and st["done"] == 0 and st["pending"] == 40
    assert "state: cancelled" in cli("status", run_id, "--local").stdout
    assert "cancelled" in cli("list", "--local").stdout
    res = cli("resume", run_id, "--local", "--workers", "1")
    assert res.stdout.strip() == f"resumed {run_id}: 40 cells re-enqueued"
    st = json.loads(cli("status", run_id, "--local", "--json").stdout)
    assert st["cancelled"] is False and st["done"] == 40 and st["finished"] is True
    data = json.loads(cli("result", run_id, "--local", "--format", "json").stdout)
    assert data["digest"] == serial_digest(3)


def test_resume_local_after_deleting_records_gives_the_same_digest(home: Path) -> None:
    run_id, submitted = submit_local("--workers", "1", "--seed", "3")
    before = digest_of(submitted.stdout)
    store = local_store(home)
    assert store.delete_records(run_id, ["baseline:3", "shifted:3", "shifted:17"]) == 3
    st = json.loads(cli("status", run_id, "--local", "--json").stdout)
    assert st["pending"] == 3 and not st["finished"]
    partial = cli("result", run_id, "--local", code=1).stdout  # a partial result exits 1
    assert partial.startswith("partial result: 3 cells have no record")
    assert "partial: 3 cells without a record" in partial
    assert "digest: none (partial result)" in partial and before not in partial
    res = cli("resume", run_id, "--local", "--workers", "1")
    assert res.stdout.strip() == f"resumed {run_id}: 3 cells re-enqueued"
    assert digest_of(cli("result", run_id, "--local").stdout) == before == serial_digest(3)
    # nothing left to do: a second resume re-enqueues nothing
    again = cli("resume", run_id, "--local", "--workers", "1")
    assert again.stdout.strip() == f"resumed {run_id}: 0 cells re-enqueued"


# --- every option's environment variable -----------------------------------------------------
def test_env_replicates_seed_and_format(home: Path) -> None:
    res = cli(
        "submit",
        QUICKSTART,
        "--local",
        "--no-progress",
        CRYSTALLIZE_DIST_REPLICATES="4",
        CRYSTALLIZE_DIST_SEED="3",
        CRYSTALLIZE_DIST_WORKERS="1",
        CRYSTALLIZE_DIST_FORMAT="json",
    )
    data = json.loads(res.stdout)  # one JSON document: the run id is inside it
    run_id = data["provenance"]["run_id"]
    assert res.stderr.startswith(f"run {run_id}\n")
    assert data["provenance"]["replicates"] == 4
    assert data["provenance"]["master_seed"] == 3
    assert data["digest"] == serial_digest(3, 4)
    manifest = local_store(home).manifest(run_id.strip())
    assert manifest["options"]["workers"] == 1
    # an option on the command line wins over its variable
    run2, _ = submit_local("--replicates", "2", "--seed", "5", CRYSTALLIZE_DIST_REPLICATES="4")
    assert json.loads(cli("status", run2, "--local", "--json").stdout)["total"] == 4


def test_env_local_needs_no_broker(home: Path) -> None:
    run_id, _ = submit_local(
        "--workers",
        "1",
        "--replicates",
        "2",
        CRYSTALLIZE_DIST_BROKER_URL="redis://127.0.0.1:1/0",
    )
    res = cli(
        "submit",
        QUICKSTART,
        "--no-progress",
        "--workers",
        "1",
        "--replicates",
        "2",
        CRYSTALLIZE_DIST_LOCAL="1",
        CRYSTALLIZE_DIST_BROKER_URL="redis://127.0.0.1:1/0",
    )
    run2 = res.stdout.splitlines()[0]
    assert set(local_store(home).run_ids()) == {run_id, run2}
    assert run2 in cli("status", run2, CRYSTALLIZE_DIST_LOCAL="1").stdout
    assert run2 in cli("list", CRYSTALLIZE_DIST_LOCAL="1").stdout
    assert "digest: " in cli("result", run2, CRYSTALLIZE_DIST_LOCAL="1").stdout


@pytest.mark.parametrize(
    ("var", "value", "option", "expected"),
    [
        ("CRYSTALLIZE_DIST_CELLS_PER_TASK", "5", "cells_per_task", 5),
        ("CRYSTALLIZE_DIST_DRIFT_POLICY", "refuse", "drift_policy", "refuse"),
        ("CRYSTALLIZE_DIST_WORKERS", "1", "workers", 1),
    ],
)
def test_env_submit_options_reach_the_manifest(
    home: Path, var: str, value: str, option: str, expected: Any
) -> None:
    run_id, _ = submit_local("--replicates", "2", "--workers", "1", **{var: value})
    assert local_store(home).manifest(run_id)["options"][option] == expected


def test_env_invalid_values_are_one_line_errors(home: Path) -> None:
    res = cli("submit", QUICKSTART, "--local", code=1, CRYSTALLIZE_DIST_CELLS_PER_TASK="0")
    assert res.stderr.strip() == "error: --cells-per-task must be >= 1, got 0"
    res = cli("submit", QUICKSTART, "--local", code=2, CRYSTALLIZE_DIST_FORMAT="xml")
    assert "xml" in res.stderr
    assert local_store(home).run_ids() == []


def test_env_result_format_and_resume_workers(home: Path) -> None:
    run_id, _ = submit_local("--workers", "1", "--seed", "3", "--replicates", "3")
    data = json.loads(cli("result", run_id, "--local", CRYSTALLIZE_DIST_FORMAT="json").stdout)
    assert data["digest"] == serial_digest(3, 3)
    text = cli("result", run_id, "--local", CRYSTALLIZE_DIST_FORMAT="csv").stdout
    assert text.splitlines()[0] == ",".join(CSV_HEADER)
    local_store(home).delete_records(run_id, ["baseline:1"])
    res = cli("resume", run_id, CRYSTALLIZE_DIST_LOCAL="true", CRYSTALLIZE_DIST_WORKERS="1")
    assert res.stdout.strip() == f"resumed {run_id}: 1 cells re-enqueued"
    assert digest_of(cli("result", run_id, "--local").stdout) == serial_digest(3, 3)


def test_env_worker_options(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import crystallize_dist.distributed.worker as worker_mod

    seen: dict[str, Any] = {}

    def fake_start(settings: Settings, **kwargs: Any) -> None:
        seen.update(kwargs, settings=settings)

    monkeypatch.setattr(worker_mod, "start_worker", fake_start)
    cli(
        "worker",
        CRYSTALLIZE_DIST_BROKER_URL="redis://127.0.0.1:6390/3",
        CRYSTALLIZE_DIST_CONCURRENCY="3",
        CRYSTALLIZE_DIST_POOL="threads",
        CRYSTALLIZE_DIST_QUEUE="gpu",
        CRYSTALLIZE_DIST_HOSTNAME="w9@%h",
        CRYSTALLIZE_DIST_LOGLEVEL="DEBUG",
    )
    assert seen["settings"].broker_url == "redis://127.0.0.1:6390/3"
    assert seen["settings"].queue == "gpu"
    assert (seen["concurrency"], seen["pool"], seen["hostname"], seen["loglevel"]) == (
        3,
        "threads",
        "w9@%h",
        "DEBUG",
    )


# --- against a real redis-server -------------------------------------------------------------
@pytest.fixture
def pending_run(redis_url: str, home: Path) -> Iterator[str]:
    """A run submitted through the coordinator to Redis; no worker runs it."""
    settings = Settings.from_env(broker_url=redis_url)
    store = open_store(redis_url)
    sub = coordinator.submit(QUICKSTART, settings=settings, store=store, seed=1, replicates=3)
    assert sub.messages == 6
    yield sub.run_id
    store.close()


def test_redis_status_of_a_pending_run(redis_url: str, pending_run: str) -> None:
    table = cli("status", pending_run, "--broker", redis_url).stdout
    assert pending_run in table and "state: running" in table and "eta: -" in table
    assert re.search(r"baseline\s*│\s*0\s*│\s*0\s*│\s*3", table), table
    assert re.search(r"total\s*│\s*0\s*│\s*0\s*│\s*6", table), table
    # the broker from its variable
    st = json.loads(
        cli("status", pending_run, "--json", CRYSTALLIZE_DIST_BROKER_URL=redis_url).stdout
    )
    assert (st["total"], st["done"], st["pending"]) == (6, 0, 6)
    assert st["per_condition"]["shifted"] == {"ok": 0, "error": 0, "pending": 3}
    assert st["eta"] is None and st["workers"] == [] and st["finished"] is False


def test_redis_result_of_a_pending_run_is_partial(
    redis_url: str, pending_run: str, tmp_path: Path
) -> None:
    table = cli("result", pending_run, "--broker", redis_url, code=1).stdout
    assert "partial: 6 cells without a record" in table and "digest: none" in table
    data = json.loads(
        cli("result", pending_run, "--broker", redis_url, "--format", "json", code=1).stdout
    )
    assert data["complete"] is False and data["digest"] is None
    assert data["provenance"]["run_id"] == pending_run
    assert data["provenance"]["missing"] == [
        f"{c}:{r}" for r in range(3) for c in ("baseline", "shifted")
    ]
    out = tmp_path / "r.csv"
    cli("result", pending_run, "--broker", redis_url, "--format", "csv", "-o", str(out), code=1)
    assert out.read_text().splitlines() == [",".join(CSV_HEADER)]


def test_redis_list_and_cancel(redis_url: str, pending_run: str) -> None:
    row = next(
        line
        for line in cli("list", "--broker", redis_url).stdout.splitlines()
        if pending_run in line
    )
    assert "quickstart" in row and "running" in row and "6" in row
    res = cli("cancel", pending_run, "--broker", redis_url)
    assert res.stdout.strip() == f"cancelled {pending_run}"
    assert open_store(redis_url).cancelled(pending_run)
    st = json.loads(cli("status", pending_run, "--broker", redis_url, "--json").stdout)
    assert st["cancelled"] is True and st["pending"] == 6
    assert "cancelled" in cli("list", "--broker", redis_url).stdout


def test_resume_sends_again_a_cell_a_cancel_skipped_while_its_message_is_held(
    redis_url: str, pending_run: str
) -> None:
    """A worker took a message of a cancelled run and skipped its cell, but has not acked
    it yet when ``resume`` looks at the queue: the cell still has a message there, yet it
    will never run from it, so resume sends it again (before, it was lost)."""
    store = open_store(redis_url)
    cli("cancel", pending_run, "--broker", redis_url)
    assert store.start_cell(pending_run, "baseline:1").cancelled  # the worker's skip
    res = cli("resume", pending_run, "--broker", redis_url)
    assert res.stdout.strip() == f"resumed {pending_run}: 1 cells re-enqueued"
    again = cli("resume", pending_run, "--broker", redis_url)  # every cell has a message
    assert again.stdout.strip() == f"resumed {pending_run}: 0 cells re-enqueued"


def test_redis_unknown_run_is_one_line_error(redis_url: str, home: Path) -> None:
    for cmd in ("status", "result", "cancel", "resume"):
        res = cli(cmd, "no-such-run", "--broker", redis_url, code=1)
        assert res.stderr.startswith("error: no run 'no-such-run'"), res.stderr
        assert len(res.stderr.strip().splitlines()) == 1


HYPOTHESIS_EXPERIMENT = """
from crystallize_dist import (
    DataSource, Experiment, Hypothesis, Pipeline, PipelineStep, Treatment, verifier,
)
from hyp_helper import offset


class Source(DataSource):
    def fetch(self, ctx):
        return ctx.rng.normal()


class Shift(PipelineStep):
    def __call__(self, data, ctx):
        return data, {"y": data + offset() + ctx.get("shift", 0.0)}


@verifier
def mean_gap(baseline_samples, treatment_samples):
    gap = sum(treatment_samples["y"]) / len(treatment_samples["y"]) - sum(
        baseline_samples["y"]) / len(baseline_samples["y"])
    return {"gap": gap}


experiment = Experiment(
    Source(), Pipeline([Shift()]), treatments=[Treatment("up", {"shift": 1.0})],
    hypotheses=[Hypothesis(mean_gap(), metrics="y", ranker=lambda r: -r["gap"], name="gap")],
    replicates=4,
)
"""


def test_result_says_why_hypotheses_are_missing(home: Path, tmp_path: Path) -> None:
    """Reading a run imports no code: hypotheses are verified only with an experiment the
    reader passes (``--experiment``), and only when it is the submitted code - a file
    nothing imports does not count as a change, an imported helper does; every format says
    why hypotheses are missing and how to verify them."""
    folder = tmp_path / "hyp"
    folder.mkdir()
    exp = str(folder / "hyp_exp.py")
    (folder / "hyp_exp.py").write_text(HYPOTHESIS_EXPERIMENT)
    (folder / "hyp_helper.py").write_text("def offset():\n    return 0.0\n")
    res = cli("submit", exp, "--local", "--no-progress", "--wait")
    assert "hypothesis gap:" in res.stdout  # the submitter verifies them with its own copy
    run_id = res.stdout.splitlines()[0]
    res = cli("result", run_id, "--local", "--format", "json")
    assert json.loads(res.stdout)["hypotheses"] == []
    assert res.stderr.startswith("note: hypotheses not verified: reading a run imports no code")
    assert "--experiment" in res.stderr
    (folder / "scratch.py").write_text("print('nothing imports me')\n")
    res = cli("result", run_id, "--local", "--format", "json", "--experiment", exp)
    assert [h["name"] for h in json.loads(res.stdout)["hypotheses"]] == ["gap"]
    assert cli("resume", run_id, "--local").exit_code == 0  # not refused as changed code
    (folder / "hyp_helper.py").write_text("def offset():\n    return 1.0  # changed\n")
    table = cli("result", run_id, "--local", "--experiment", exp).stdout
    assert "hypotheses not verified: the experiment given has fingerprint" in table
    res = cli("result", run_id, "--local", "--format", "json", "--experiment", exp)
    assert json.loads(res.stdout)["hypotheses"] == []
    assert res.stderr.startswith("note: hypotheses not verified"), res.stderr


def test_reading_local_runs_where_there_are_none_makes_nothing(home: Path) -> None:
    assert "Runs" in cli("list", "--local").stdout  # an empty table
    for args in (["status", "r1"], ["result", "r1"], ["cancel", "r1"]):
        err = cli(*args, "--local", code=1).stderr
        assert err.startswith("error: no run 'r1' in ") and str(home) in err
        assert "no --local runs here yet" in err
    assert not home.exists()  # no store was made just to read it


ODD_KEYS = """
from crystallize_dist import DataSource, Experiment, Pipeline, PipelineStep


class Zero(DataSource):
    def fetch(self, ctx):
        return 0


class Pairs(PipelineStep):
    def __call__(self, data, ctx):
        return data, {"m": {(1, ctx["replicate"]): 3}}  # a key JSON cannot write as it is


experiment = Experiment(Zero(), Pipeline([Pairs()]), replicates=2, name="odd_keys")
"""


def test_a_metric_with_non_string_keys_gives_the_same_result_everywhere(home: Path) -> None:
    src = home.parent / "odd_keys_exp.py"
    src.write_text(ODD_KEYS)
    exp, _ = load_experiment(str(src))
    serial = exp.run(seed=3)
    assert serial.metrics.baseline.metrics["m"] == [{"(1, 0)": 3}, {"(1, 1)": 3}]
    assert json.loads(serial.to_json() or "")["digest"] == serial.digest  # provenance too
    out = cli("submit", str(src), "--local", "--seed", "3", "--format", "json", "--no-progress")
    local = json.loads(out.stdout)
    assert local["digest"] == serial.digest and local["errors"] == {}
