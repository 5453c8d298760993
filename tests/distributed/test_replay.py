"""``replay``: re-run recorded cells with the manifest's seeds and compare metrics digests."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from experiment_sources import write_bundled, write_clock

from crystallize_dist.cli import main
from crystallize_dist.config import Settings
from crystallize_dist.distributed.coordinator import submit
from crystallize_dist.distributed.local import run_local
from crystallize_dist.distributed.replay import metrics_digest, outcome, replay_run
from crystallize_dist.distributed.store import SQLiteStore
from crystallize_dist.engine.plan import RunPlan
from crystallize_dist.errors import InvalidOptionError, ReplayMismatchError

FAILING = """
from crystallize_dist import DataSource, Experiment, FrozenContext, Pipeline, PipelineStep


class Source(DataSource):
    def fetch(self, ctx: FrozenContext) -> float:
        return float(ctx.rng.random())


class FailOnOdd(PipelineStep):
    def __call__(self, data: float, ctx: FrozenContext) -> float:
        if ctx.get("replicate") % 2:
            raise ValueError("odd replicate")
        ctx.metrics.add("x", data)
        return data


experiment = Experiment(datasource=Source(), pipeline=Pipeline([FailOnOdd()]), replicates=4)
"""


def _local_run(tmp_path: Path, exp_file: Path) -> tuple[SQLiteStore, Settings, str]:
    settings = Settings(home=tmp_path / "home")
    store = SQLiteStore(settings.sqlite_path)
    sub = submit(str(exp_file), settings=settings, store=store, seed=11, local=True)
    cells = list(RunPlan.from_dict(sub.manifest["plan"]).cells())
    run_local(sub.run_id, cells, store=store, settings=settings, workers=1)
    return store, settings, sub.run_id


def test_a_seeded_run_replays_exactly(tmp_path: Path) -> None:
    store, settings, run_id = _local_run(tmp_path, write_bundled(tmp_path / "src", "replayok"))
    report = replay_run(run_id, store=store, settings=settings)
    assert (report.matches, report.mismatches) == (8, 0)
    assert report.lines() == ["8 matches, 0 mismatches"]
    report.check()
    first = replay_run(run_id, store=store, settings=settings, cells=3)
    assert [c.key for c in first.comparisons] == ["baseline:0", "shifted:0", "baseline:1"]
    with pytest.raises(InvalidOptionError):
        replay_run(run_id, store=store, settings=settings, cells=0)


def test_a_clock_reading_step_does_not_replay(tmp_path: Path) -> None:
    store, settings, run_id = _local_run(tmp_path, write_clock(tmp_path / "src", "replayclock"))
    report = replay_run(run_id, store=store, settings=settings)
    assert (report.matches, report.mismatches) == (0, 3)
    lines = report.lines()
    assert lines[-1] == "0 matches, 3 mismatches"
    assert lines[0].startswith("mismatch baseline:0 (seed ")
    with pytest.raises(ReplayMismatchError, match="3 of 3 replayed cells differ"):
        report.check()


def test_error_records_compare_by_error_type(tmp_path: Path) -> None:
    exp_file = tmp_path / "src" / "failing_replay.py"
    exp_file.parent.mkdir()
    exp_file.write_text(FAILING)
    store, settings, run_id = _local_run(tmp_path, exp_file)
    report = replay_run(run_id, store=store, settings=settings)
    assert report.mismatches == 0 and report.matches == 4
    stored = [c.stored for c in report.comparisons]
    assert stored[1] == "error PipelineExecutionError(ValueError)"
    assert outcome({"status": "ok", "metrics": {"x": [1.0]}}) == "metrics " + metrics_digest(
        {"x": [1.0]}
    )


def test_cli_replay_exit_codes(tmp_path: Path) -> None:
    env = {"CRYSTALLIZE_DIST_HOME": str(tmp_path / "home")}
    ok_store, _, ok_id = _local_run(tmp_path, write_bundled(tmp_path / "a", "cliok"))
    _, _, clock_id = _local_run(tmp_path, write_clock(tmp_path / "b", "cliclock"))
    good = CliRunner().invoke(main, ["replay", ok_id, "--local", "--all"], env=env)
    assert good.exit_code == 0, good.output
    assert good.output.strip() == "8 matches, 0 mismatches"
    some = CliRunner().invoke(main, ["replay", ok_id, "--local", "--cells", "2"], env=env)
    assert some.output.strip() == "2 matches, 0 mismatches"
    bad = CliRunner().invoke(main, ["replay", clock_id, "--local"], env=env)
    assert bad.exit_code == 1
    assert "0 matches, 3 mismatches" in bad.output
    both = CliRunner().invoke(main, ["replay", ok_id, "--local", "--all", "--cells", "1"], env=env)
    assert both.exit_code == 1 and "exclude each other" in both.output
    ok_store.close()


def test_with_a_secret_replay_and_resume_verify_the_run_before_importing_it(
    tmp_path: Path,
) -> None:
    """Both run the run's code on purpose; with a secret, only a run signed with it (the
    manifest is verified before the reference it names is loaded)."""
    from crystallize_dist.distributed.coordinator import resume
    from crystallize_dist.errors import SignatureError

    store, _, run_id = _local_run(tmp_path, write_bundled(tmp_path / "src", "replaysig"))
    with_secret = Settings(home=tmp_path / "home", secret="replay-secret")
    with pytest.raises(SignatureError, match="its manifest is unsigned"):
        replay_run(run_id, store=store, settings=with_secret)
    with pytest.raises(SignatureError, match="its manifest is unsigned"):
        resume(run_id, settings=with_secret, store=store, local=True)
    sub = submit(
        str(tmp_path / "src" / "exp_replaysig.py"),
        settings=with_secret,
        store=store,
        seed=11,
        local=True,
    )
    cells = list(RunPlan.from_dict(sub.manifest["plan"]).cells())
    run_local(sub.run_id, cells, store=store, settings=with_secret, workers=1)
    report = replay_run(sub.run_id, store=store, settings=with_secret)
    assert (report.matches, report.mismatches) == (8, 0)
