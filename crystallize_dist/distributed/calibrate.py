"""``--cells-per-task auto``: pick how many cells a task carries from a short calibration.

A Celery task costs about 2-4 ms of broker and worker time (measured on 2 cores: kombu's
ack, the prefork pool's hand-over, our record write). Cells are batched so each task
carries about ``TARGET_TASK_SECONDS`` of work, which keeps that cost near 3 % or below;
cells slower than that run one per task, where batching would only cost parallelism.
"""

from __future__ import annotations

import time

from crystallize_dist.distributed.deadline import cell_deadline
from crystallize_dist.engine.cell import execute_cell
from crystallize_dist.engine.runspec import resolve
from crystallize_dist.errors import InvalidOptionError
from crystallize_dist.model.artifacts import ArtifactPlugin
from crystallize_dist.model.experiment import Experiment
from crystallize_dist.model.plugins import StepHooks
from crystallize_dist.model.references import load_experiment

#: seconds of cell work one task should carry (the issue's range: 50-100 ms).
TARGET_TASK_SECONDS = 0.1
#: cells at least this slow run one per task.
SLOW_CELL_SECONDS = TARGET_TASK_SECONDS
MAX_CELLS_PER_TASK = 1000
#: a batched run is split into at least this many tasks (when it has that many cells), so a
#: small run still spreads over every worker process
MIN_TASKS = 32
CALIBRATION_SECONDS = 0.5
#: seconds: a calibration cell running longer than this is stopped (one cell per task).
CALIBRATION_LIMIT = 10.0


def cells_for(cell_seconds: float) -> int:
    """Cells per task for cells taking ``cell_seconds`` each."""
    if cell_seconds >= SLOW_CELL_SECONDS:
        return 1
    return max(1, min(MAX_CELLS_PER_TASK, round(TARGET_TASK_SECONDS / max(cell_seconds, 1e-6))))


def auto_cells_per_task(
    ref_text: str, *, replicates: int | None = None, treatments: int | None = None
) -> int:
    """Time a few cells of the experiment here and size tasks from that.

    Calibration runs the experiment's code on the submitting machine, briefly, on cells of
    the run itself (its first replicates; their records and any artifacts its steps log
    are thrown away): a cell that fails, or takes longer than ``SLOW_CELL_SECONDS`` (it is
    stopped at ``CALIBRATION_LIMIT`` seconds), means one cell per task. The run
    (``replicates`` and ``treatments`` count, default the experiment's) is kept to at least
    ``MIN_TASKS`` tasks, so a run too small to batch runs nothing here.
    """
    experiment, _ = load_experiment(ref_text)
    reps = replicates if replicates is not None else experiment.replicates
    n_cells = reps * (1 + (treatments if treatments is not None else len(experiment.treatments)))
    most = max(1, n_cells // MIN_TASKS)
    return 1 if most == 1 else min(_calibrated(experiment, reps), most)


def _calibrated(experiment: Experiment, replicates: int) -> int:
    """Cells per task from timing the experiment's first cells (of at most 64 replicates)."""
    spec = resolve(experiment, hypotheses=[], replicates=min(replicates, 64), strategy="rerun")
    cells = list(spec.plan.cells())
    with experiment.running(
        treatments=spec.treatments,
        hypotheses=[],
        replicates=spec.plan.replicates,
        seed=spec.plan.master_seed,
    ):
        # no artifact files from calibration cells: the run writes its own
        spec.hooks = StepHooks.of(
            [p for p in experiment.plugins if not isinstance(p, ArtifactPlugin)]
        )
        with cell_deadline(CALIBRATION_LIMIT, "calibration cell"):
            first = execute_cell(spec, cells[0])  # also warms caches (hashes, imports)
        if first["status"] != "ok" or first["timing"]["duration"] >= SLOW_CELL_SECONDS:
            return 1
        start = time.perf_counter()
        n = 0
        for cell in cells[1:]:
            with cell_deadline(CALIBRATION_LIMIT, "calibration cell"):
                execute_cell(spec, cell)
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
