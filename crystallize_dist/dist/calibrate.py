"""``--cells-per-task auto``: pick how many cells a task carries from a short calibration.

A Celery task costs about 2 ms of broker and worker overhead; cells much faster than that
are batched so each task carries about ``TARGET_TASK_SECONDS`` of work.
"""

from __future__ import annotations

import time

from crystallize_dist.core.cell import run_cell
from crystallize_dist.core.loading import load_experiment
from crystallize_dist.errors import InvalidOptionError

#: seconds of cell work one task should carry.
TARGET_TASK_SECONDS = 0.075
#: cells slower than this run one per task.
SLOW_CELL_SECONDS = 0.05
MAX_CELLS_PER_TASK = 1000
CALIBRATION_SECONDS = 0.5
#: seconds: a calibration cell running longer than this is stopped (one cell per task).
CALIBRATION_LIMIT = 10.0


def cells_for(cell_seconds: float) -> int:
    """Cells per task for cells taking ``cell_seconds`` each."""
    if cell_seconds >= SLOW_CELL_SECONDS:
        return 1
    return max(1, min(MAX_CELLS_PER_TASK, int(TARGET_TASK_SECONDS / max(cell_seconds, 1e-6))))


def auto_cells_per_task(ref_text: str) -> int:
    """Time a few baseline cells of the experiment here and size tasks from that.

    Calibration runs the experiment's code on the submitting machine, briefly: a cell that
    fails, or takes longer than ``SLOW_CELL_SECONDS`` (it is stopped at
    ``CALIBRATION_LIMIT`` seconds), means one cell per task.
    """
    from crystallize_dist.dist.deadline import cell_deadline

    experiment, _ = load_experiment(ref_text)
    spec = experiment.resolve(hypotheses=[], replicates=64, strategy="rerun")
    cells = list(spec.plan.cells())
    with experiment._running(spec):
        with cell_deadline(CALIBRATION_LIMIT, "calibration cell"):
            first = run_cell(experiment, cells[0])  # also warms caches (hashes, imports)
        if first["status"] != "ok" or first["timing"]["duration"] >= SLOW_CELL_SECONDS:
            return 1
        start = time.perf_counter()
        n = 0
        for cell in cells[1:]:
            with cell_deadline(CALIBRATION_LIMIT, "calibration cell"):
                run_cell(experiment, cell)
            n += 1
            if time.perf_counter() - start > CALIBRATION_SECONDS:
                break
        per_cell = (time.perf_counter() - start) / max(1, n)
    return cells_for(per_cell)


def parse_cells_per_task(value: str) -> int | str:
    """``--cells-per-task``: a positive integer or ``auto``."""
    if value == "auto":
        return "auto"
    try:
        n = int(value)
    except ValueError:
        raise InvalidOptionError(
            f"--cells-per-task must be a positive integer or 'auto', got {value!r}"
        ) from None
    if n < 1:
        raise InvalidOptionError(f"--cells-per-task must be >= 1, got {n}")
    return n
