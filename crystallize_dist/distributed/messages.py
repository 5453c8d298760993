"""Task messages: what a run_cells task carries, validated before any code runs.

A message is ``run_cells(run_id, cells)`` where ``cells`` is a list of
``[condition, replicate, seed]``. The seed comes from the manifest's seed table; a worker
checks every field against the manifest (the seed against that table) and never derives a
seed itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from crystallize_dist.engine.plan import Cell, RunPlan
from crystallize_dist.errors import TaskMessageError
from crystallize_dist.model.seeding import SEED_MODULUS

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
MAX_CELLS_PER_MESSAGE = 100_000


def cell_message(cell: Cell) -> list[Any]:
    return [cell.condition, cell.replicate, cell.seed]


def task_id(run_id: str, cells: Sequence[Cell]) -> str:
    """Deterministic id: ``<run>:<condition>:<replicate>`` (``+<n>`` for a batch of n)."""
    first = cells[0]
    base = f"{run_id}:{first.condition}:{first.replicate}"
    return base if len(cells) == 1 else f"{base}+{len(cells)}"


def check_run_id(run_id: Any) -> str:
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
        raise TaskMessageError(f"task message: run_id must be a run id string, got {run_id!r}")
    return run_id


def parse_message(args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """``(run_id, raw cells)`` from a task's arguments; unknown fields are an error
    (``canary`` marks a message of the determinism canary, see ``canary_tasks``)."""
    unknown = sorted(set(kwargs) - {"run_id", "cells", "canary"})
    if unknown:
        raise TaskMessageError(f"task message has unknown fields: {', '.join(unknown)}")
    values = dict(zip(("run_id", "cells"), args, strict=False))
    if len(args) > 2:
        raise TaskMessageError(f"task message has {len(args)} arguments, expected 2")
    kwargs = {k: v for k, v in kwargs.items() if k != "canary"}
    overlap = set(values) & set(kwargs)
    if overlap:
        raise TaskMessageError(f"task message gives {sorted(overlap)} twice")
    values.update(kwargs)
    if "run_id" not in values or "cells" not in values:
        raise TaskMessageError("task message needs run_id and cells")
    cells = values["cells"]
    if not isinstance(cells, list) or not cells or len(cells) > MAX_CELLS_PER_MESSAGE:
        raise TaskMessageError(
            f"task message: cells must be a non-empty list of at most "
            f"{MAX_CELLS_PER_MESSAGE} cells, got {type(cells).__name__}"
        )
    return check_run_id(values["run_id"]), cells


def check_cells(raw: list[Any], plan: RunPlan, seeds: Sequence[int], run_id: str) -> list[Cell]:
    """Cells from a message, each checked against the run's plan (types, ranges) and its
    seed table ``seeds`` (the manifest's seed of each replicate)."""
    conditions = set(plan.conditions)
    out = []
    for i, item in enumerate(raw):
        where = f"task message for run '{run_id}', cell {i}"
        if not isinstance(item, (list, tuple)) or len(item) != 3:
            raise TaskMessageError(f"{where}: expected [condition, replicate, seed], got {item!r}")
        cond, rep, seed = item
        if not isinstance(cond, str) or cond not in conditions:
            raise TaskMessageError(f"{where}: unknown condition {cond!r}")
        if isinstance(rep, bool) or not isinstance(rep, int) or not 0 <= rep < plan.replicates:
            raise TaskMessageError(
                f"{where}: replicate must be an int in 0..{plan.replicates - 1}, got {rep!r}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_MODULUS:
            raise TaskMessageError(f"{where}: seed must be an int in 0..2**32-1, got {seed!r}")
        if rep >= len(seeds) or seed != seeds[rep]:
            planned = seeds[rep] if rep < len(seeds) else None
            raise TaskMessageError(
                f"{where}: seed {seed} differs from the manifest's {planned} for replicate {rep}"
            )
        out.append(Cell(cond, rep, seed))
    return out
