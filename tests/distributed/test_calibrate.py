"""``--cells-per-task auto``: the sizing rule, and a calibration of a real experiment."""

from __future__ import annotations

from pathlib import Path

import pytest

from crystallize_dist.distributed.calibrate import (
    MAX_CELLS_PER_TASK,
    MIN_TASKS,
    TARGET_TASK_SECONDS,
    auto_cells_per_task,
    cells_for,
    parse_cells_per_task,
)
from crystallize_dist.errors import InvalidOptionError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    ("cell_ms", "expected"),
    [
        (500.0, 1),  # slow cells: one per task
        (100.0, 1),
        (70.0, 1),
        (50.0, 2),  # ~50 ms numpy cells: two per task, ~100 ms of work
        (55.0, 2),
        (20.0, 5),
        (1.0, 100),
        (0.01, MAX_CELLS_PER_TASK),  # capped
        (0.0, MAX_CELLS_PER_TASK),
    ],
)
def test_cells_for_sizes_tasks_to_about_the_target(cell_ms: float, expected: int) -> None:
    n = cells_for(cell_ms / 1000)
    assert n == expected
    if 1 < n < MAX_CELLS_PER_TASK:  # a batch carries about the target of work
        assert 0.5 * TARGET_TASK_SECONDS <= n * cell_ms / 1000 <= 1.5 * TARGET_TASK_SECONDS


def test_auto_batches_the_quickstart_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default ArtifactPlugin writes ./data
    quickstart = str(EXAMPLES / "quickstart.py")
    # sub-millisecond cells: many per task in a big run ...
    n = auto_cells_per_task(quickstart, replicates=50_000)
    assert 10 <= n <= MAX_CELLS_PER_TASK
    # ... but a run is never cut into fewer than MIN_TASKS tasks, so it spreads over workers
    assert auto_cells_per_task(quickstart, replicates=320) == 320 * 2 // MIN_TASKS
    assert auto_cells_per_task(quickstart) == 1  # its own 20 replicates x 2 conditions
    assert auto_cells_per_task(quickstart, replicates=320, treatments=0) == 320 // MIN_TASKS


def test_parse_cells_per_task() -> None:
    assert parse_cells_per_task("auto") == "auto"
    assert parse_cells_per_task("7") == 7
    for bad in ("0", "-2", "many"):
        with pytest.raises(InvalidOptionError, match="--cells-per-task"):
            parse_cells_per_task(bad)


ARTIFACTS = """
from crystallize_dist import DataSource, Experiment, Pipeline, PipelineStep

RAN = []


class Zero(DataSource):
    def fetch(self, ctx):
        return 0.0


class Note(PipelineStep):
    def __call__(self, data, ctx):
        RAN.append(ctx["replicate"])
        ctx.artifacts.add("note.txt", b"hi")
        return data, {"x": data}


experiment = Experiment(Zero(), Pipeline([Note()]), replicates=6, name="notes")
"""


def test_calibration_writes_no_artifacts_and_runs_only_cells_of_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "notes_exp.py"
    src.write_text(ARTIFACTS)
    assert auto_cells_per_task(str(src)) == 1  # 6 cells: too few to batch, nothing runs
    assert auto_cells_per_task(str(src), replicates=40 * MIN_TASKS) > 1
    import sys

    ran = sys.modules["notes_exp"].RAN
    assert ran and set(ran) <= set(range(40 * MIN_TASKS))
    assert len(ran) <= 64  # at most 64 replicates of the run, never more
    assert not (tmp_path / "data").exists()  # calibration cells leave no files
