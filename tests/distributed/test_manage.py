"""cancel, delete and purge on the embedded store, through the CLI as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from workers import run_cli

from crystallize_dist.cli.manage import parse_age
from crystallize_dist.errors import InvalidOptionError

SMALL = """
from crystallize_dist import DataSource, Experiment, Pipeline, PipelineStep, SeedPlugin


class Zero(DataSource):
    def fetch(self, ctx):
        return 0.0


class Draw(PipelineStep):
    def __call__(self, data, ctx):
        return data, {"x": float(ctx.rng.random())}


experiment = Experiment(Zero(), Pipeline([Draw()]), plugins=[SeedPlugin(seed=3)], replicates=4)
"""


def local(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {"CRYSTALLIZE_DIST_HOME": str(tmp_path / "home")}
    out = run_cli(*args, "--local", cwd=tmp_path, env=env)
    return out.returncode, out.stdout, out.stderr


def submit(tmp_path: Path) -> str:
    (tmp_path / "small.py").write_text(SMALL)
    code, out, err = local(tmp_path, "submit", "small.py", "--no-progress", "-w", "1")
    assert code == 0, err
    return out.split()[0]


def test_cancel_of_a_finished_run_says_so_and_changes_nothing(tmp_path: Path) -> None:
    run_id = submit(tmp_path)
    code, out, _ = local(tmp_path, "cancel", run_id)
    assert code == 0
    finished = f"run {run_id} already finished (every cell has a record); nothing to cancel"
    assert out.strip() == finished
    code, out, _ = local(tmp_path, "status", run_id, "--json")
    assert json.loads(out)["state"] == "finished"


def test_delete_removes_a_run_and_purge_removes_old_ones(tmp_path: Path) -> None:
    first, second = submit(tmp_path), submit(tmp_path)
    code, out, _ = local(tmp_path, "delete", first)
    assert (code, out.strip()) == (0, f"deleted {first}")
    code, _, err = local(tmp_path, "status", first)
    assert code != 0 and first in err and "Traceback" not in err
    code, out, _ = local(tmp_path, "list")
    assert first not in out and second in out
    code, out, _ = local(tmp_path, "purge", "--older-than", "1d")
    assert (code, out.strip()) == (0, "purged 0 run(s)")
    code, out, _ = local(tmp_path, "purge", "--older-than", "0s")
    assert (code, out.strip()) == (0, f"purged 1 run(s): {second}")
    code, _, err = local(tmp_path, "delete", second)
    assert code != 0 and second in err and len(err.strip().splitlines()) == 1


def test_a_bad_age_is_one_line(tmp_path: Path) -> None:
    code, _, err = local(tmp_path, "purge", "--older-than", "a week")
    assert code != 0 and "--older-than 'a week' is not an age" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "seconds"), [("7d", 7 * 86400), ("12h", 43200), ("30m", 1800), ("90", 90.0),
                          ("1.5h", 5400), ("2w", 14 * 86400)],
)  # fmt: skip
def test_ages(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


def test_a_negative_or_unitless_word_is_not_an_age() -> None:
    for text in ("-1d", "d", "7 days", ""):
        with pytest.raises(InvalidOptionError):
            parse_age(text)
