"""The determinism canary on the embedded store (``submit --local --canary``): a step that
reads the clock is caught, a seeded one never is; the sample is drawn from the master seed;
the verdicts show in status, the result's provenance and the report, and make the run end
with exit code 3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import cli, home  # noqa: F401  (fixture)

from crystallize_dist.distributed.canary import plan_canary
from crystallize_dist.engine.plan import RunPlan
from crystallize_dist.errors import InvalidOptionError

EXPERIMENT = str(Path(__file__).resolve().parents[1] / "canary_experiment.py")


def _submit(attr: str, code: int, *extra: str) -> tuple[str, str]:
    res = cli("submit", f"{EXPERIMENT}:{attr}", "--local", "--no-progress", "-w", "2",
              "--canary", "0.25", *extra, code=code)  # fmt: skip
    return res.stdout.splitlines()[0], res.stderr


@pytest.mark.usefixtures("home")
def test_a_step_that_reads_the_clock_is_caught(tmp_path: Path) -> None:
    run_id, err = _submit("clock", 3)
    assert "canary: 5 of 5 re-run cells differ from their records (not reproducible)" in err
    status = cli("status", run_id, "--local").stdout
    assert "canary: 5 of 5 cells checked, 0 matched, 5 mismatched" in status
    canary = json.loads(cli("result", run_id, "--local", "--format", "json").stdout)["provenance"][
        "canary"
    ]
    assert canary["checked"] == 5 and canary["matched"] == 0 and canary["pending"] == []
    assert [m["cell"] for m in canary["mismatched"]] == canary["cells"]
    for m in canary["mismatched"]:  # another process ran each again
        first, _, second = m["where"].partition(" then ")
        assert first != second and m["stored"] != m["canary"]
    assert canary["same_process"] == 0
    report = tmp_path / "r.html"
    cli("report", run_id, "--local", "-o", str(report))
    page = report.read_text()
    assert "Determinism canary" in page and "5 mismatched" in page
    # waiting again says the same
    again = cli("wait", run_id, "--local", "--no-progress", code=3)
    assert "re-run cells differ" in again.stderr


@pytest.mark.usefixtures("home")
def test_a_seeded_step_is_never_caught() -> None:
    for _ in range(3):
        run_id, err = _submit("seeded", 0)
        assert "canary" not in err
        assert (
            "canary: 5 of 5 cells checked, 5 matched, 0 mismatched"
            in cli("status", run_id, "--local").stdout
        )


def test_the_sample_is_drawn_from_the_master_seed() -> None:
    plan = RunPlan(master_seed=3, replicates=10, treatments=("up",))
    first = plan_canary(plan, 0.25)
    assert first == plan_canary(plan, 0.25) and first["fraction"] == 0.25
    keys = [f"{c.condition}:{c.replicate}" for c in plan.cells()]
    assert len(first["cells"]) == 5 and first["cells"] == [k for k in keys if k in first["cells"]]
    other = plan_canary(RunPlan(master_seed=4, replicates=10, treatments=("up",)), 0.25)
    assert other["cells"] != first["cells"]
    assert len(plan_canary(plan, 0.001)["cells"]) == 1  # at least one cell
    for bad in (0, -0.5, 1.5):
        with pytest.raises(InvalidOptionError, match="--canary must be a fraction in"):
            plan_canary(plan, bad)


@pytest.mark.usefixtures("home")
def test_a_bad_fraction_is_one_line() -> None:
    res = cli("submit", f"{EXPERIMENT}:seeded", "--local", "--canary", "2", code=1)
    assert res.stderr.strip() == "error: --canary must be a fraction in (0, 1], got 2.0"


@pytest.mark.usefixtures("home")
def test_a_forged_canary_verdict_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the secret, each verdict is signed by the process that checked the cell; a
    verdict written by someone without it (here: a forged mismatch) is left out."""
    monkeypatch.setenv("CRYSTALLIZE_DIST_SECRET", "canary-test-secret")
    run_id, _ = _submit("seeded", 0)
    from crystallize_dist.config import Settings
    from crystallize_dist.distributed.store import SQLiteStore

    store = SQLiteStore(Settings.from_env().sqlite_path)
    canary = json.loads(cli("result", run_id, "--local", "--format", "json").stdout)[
        "provenance"
    ]["canary"]
    assert canary["matched"] == 5 and "unverified" not in canary
    cell = canary["cells"][0]
    forged = {"cell": cell, "match": False, "stored": "metrics 0", "canary": "metrics 1"}
    store.update_state(run_id, **{f"canary:{cell}": forged})
    canary = json.loads(cli("result", run_id, "--local", "--format", "json").stdout)[
        "provenance"
    ]["canary"]
    assert canary["unverified"] == 1 and canary["mismatched"] == []
    assert canary["pending"] == [cell] and canary["matched"] == 4
    monkeypatch.delenv("CRYSTALLIZE_DIST_SECRET")  # a reader without the secret is fooled
    canary = json.loads(cli("result", run_id, "--local", "--format", "json").stdout)[
        "provenance"
    ]["canary"]
    assert [m["cell"] for m in canary["mismatched"]] == [cell]
