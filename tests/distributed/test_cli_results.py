"""``result --compare`` and ``result --format rows`` through the CLI, on the embedded store:
the same numbers as ``Result.comparisons`` / ``Result.value_rows`` of an in-process run."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from compare_experiment import build, failing
from test_cli import cli, home  # noqa: F401  (fixture)

from crystallize_dist.model.compare import KEYS

EXPERIMENT = str(Path(__file__).resolve().parents[1] / "compare_experiment.py")


def submit(attr: str, code: int = 0) -> str:
    res = cli("submit", f"{EXPERIMENT}:{attr}", "--local", "--no-progress", "-w", "2", code=code)
    return res.stdout.splitlines()[0]


@pytest.mark.usefixtures("home")
def test_compare_json_has_exactly_the_keys_and_the_in_process_numbers() -> None:
    run_id = submit("experiment")
    out = cli("result", run_id, "--local", "--compare", "--format", "json")
    found = json.loads(out.stdout)
    assert [list(c) for c in found] == [list(KEYS)] * len(found)
    here = [c.to_dict() for c in build().run().comparisons()]
    assert out.stdout == json.dumps(here, indent=2) + "\n"  # the same bytes
    table = cli("result", run_id, "--local", "--compare").stdout
    assert "score: treatment - baseline, paired by replicate" in table
    assert "95% CI paired" in table and "up" in table and "same" in table


@pytest.mark.usefixtures("home")
def test_compare_of_a_run_with_failed_cells_says_what_it_dropped() -> None:
    run_id = submit("failing", 3)
    out = cli("result", run_id, "--local", "--compare", "--format", "json")
    by_name = {c["treatment"]: c for c in json.loads(out.stdout)}
    assert by_name["up"]["n"] == 10 and by_name["same"]["n"] == 11
    assert "note: up / score: 2 replicates not paired" in out.stderr
    assert "metric 'loss' not compared: metric 'loss' has 3 values in cell" in out.stderr
    table = cli("result", run_id, "--local", "--compare").stdout
    assert "10 (-2)" in table and "k replicates are not paired" in table
    bad = cli("result", run_id, "--local", "--compare", "--format", "csv", code=1)
    assert bad.stderr.startswith("error: --compare prints a table or JSON")
    other = cli("result", run_id, "--local", "--compare", "--baseline", "nope", code=1)
    assert "unknown condition 'nope'" in other.stderr


@pytest.mark.usefixtures("home")
def test_rows_are_one_per_recorded_value_and_match_to_pandas(tmp_path: Path) -> None:
    run_id = submit("failing", 3)
    text = cli("result", run_id, "--local", "--format", "rows").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [
        "condition", "replicate", "seed", "metric", "index", "value", "status", "worker"
    ]  # fmt: skip
    cell = [r for r in rows if r["condition"] == "up" and r["replicate"] == "3"]
    assert [(r["metric"], r["index"]) for r in cell] == [
        ("label", "0"), ("loss", "0"), ("loss", "1"), ("loss", "2"), ("score", "0")
    ]  # fmt: skip
    assert {r["status"] for r in cell} == {"ok"} and cell[0]["worker"]
    status = {(r["condition"], r["replicate"]): r["status"] for r in rows if not r["metric"]}
    assert status == {("up", "2"): "error", ("baseline", "5"): "error",
                      ("up", "5"): "dropped", ("same", "5"): "dropped"}  # fmt: skip
    # in-process, the treatment cells of a failed baseline do not run at all (Crystallize)
    frame = failing.run().to_pandas()
    assert len(frame) == len([r for r in rows if r["status"] != "dropped"])
    loss = frame[(frame.condition == "up") & (frame.replicate == 3) & (frame.metric == "loss")]
    assert [float(v) for v in loss.value] == [float(r["value"]) for r in cell[1:4]]
    assert [repr(v) for v in loss.value] == [r["value"] for r in cell[1:4]]  # exact floats
    out = tmp_path / "rows.csv"
    cli("result", run_id, "--local", "--format", "rows", "-o", str(out))
    assert out.read_text() == text


@pytest.mark.usefixtures("home")
def test_runs_have_names_and_tags_and_list_filters_by_them() -> None:
    quick = str(Path(__file__).resolve().parents[2] / "examples" / "quickstart.py")
    base = ["--local", "--no-progress", "--replicates", "2"]
    sweep = cli("submit", quick, *base, "--name", "lr sweep", "--tag", "lr=0.1",
                "--tag", "team=vision").stdout.splitlines()[0]  # fmt: skip
    other = cli("submit", quick, *base, "--tag", "lr=0.2").stdout.splitlines()[0]
    failed = submit("failing", 3)
    listed = cli("list", "--local").stdout
    lines = listed.splitlines()
    at = next(i for i, line in enumerate(lines) if sweep in line)
    assert "lr sweep" in lines[at] and "finished" in lines[at] and "4/4" in lines[at]
    assert lines[at + 1].split() == ["lr=0.1", "team=vision"]  # its tags, on the next line
    assert "quickstart" in next(line for line in listed.splitlines() if other in line)

    def ids(*args: str) -> set[str]:
        out = cli("list", "--local", *args).stdout
        return {i for i in (sweep, other, failed) if i in out}

    assert ids("--tag", "lr=0.1") == {sweep}
    assert ids("--tag", "lr=0.1", "--tag", "team=vision") == {sweep}
    assert ids("--tag", "team=nobody") == set()
    assert ids("--name", "lr*") == {sweep}
    assert ids("--name", "quickstart") == {other}  # a run without a name: its experiment's
    assert ids("--status", "finished") == {sweep, other, failed}
    assert ids("--status", "running") == set()
    manifest = json.loads(cli("result", sweep, "--local", "--format", "json").stdout)
    assert manifest["provenance"]["options"]["tags"] == {"lr": "0.1", "team": "vision"}
    assert manifest["provenance"]["options"]["name"] == "lr sweep"
    bad = cli("submit", quick, *base, "--tag", "nokey", code=1)
    assert bad.stderr.strip() == (
        "error: --tag 'nokey' is not KEY=VALUE (a key of letters, digits, '_', '.', ':' or "
        "'-', at most 64)"
    )


@pytest.mark.usefixtures("home")
def test_status_watch_ends_with_the_exit_codes_of_wait() -> None:
    ok = submit("experiment")
    out = cli("status", ok, "--local", "--watch")
    assert f"run {ok} (compare): finished" in out.stdout
    assert "total" in out.stdout and "36" in out.stdout
    assert out.stdout.endswith("\n")  # the last frame is a whole line in a pipe too
    failed = submit("failing", 3)
    out = cli("status", failed, "--local", "--watch", code=3)
    assert "error up:2 PipelineExecutionError: Step 'Measure' failed: planned" in out.stdout
    assert "2 of 36 cells failed; the first:" in out.stderr
    from crystallize_dist.config import Settings
    from crystallize_dist.distributed import coordinator
    from crystallize_dist.distributed.store import SQLiteStore

    settings = Settings.from_env()
    store = SQLiteStore(settings.sqlite_path)
    sub = coordinator.submit(EXPERIMENT, settings=settings, store=store, local=True)
    coordinator.cancel(sub.run_id, store=store)
    out = cli("status", sub.run_id, "--local", "--watch", code=1)
    assert "cancelled" in out.stdout and "was cancelled" in out.stderr
    bad = cli("status", ok, "--local", "--watch", "--json", code=1)
    assert bad.stderr.strip() == "error: --watch redraws a view; it prints no JSON"
