"""Task messages are checked against the run's manifest before any code runs."""

from __future__ import annotations

import pytest

from crystallize_dist.distributed.messages import check_cells
from crystallize_dist.engine.plan import RunPlan
from crystallize_dist.errors import TaskMessageError


def test_a_cells_seed_is_checked_against_the_manifests_seed_table() -> None:
    """Workers never derive seeds: the seed table is the truth, even where it differs from
    what the formula would give."""
    plan = RunPlan(master_seed=5, replicates=2, treatments=("t",))
    table = [11, 22]
    cells = check_cells([["t", 1, 22], ["baseline", 0, 11]], plan, table, "run-1")
    assert [(c.condition, c.replicate, c.seed) for c in cells] == [
        ("t", 1, 22),
        ("baseline", 0, 11),
    ]
    with pytest.raises(TaskMessageError, match="differs from the manifest's 22 for replicate 1"):
        check_cells([["baseline", 1, plan.seed(1)]], plan, table, "run-1")


def test_a_replicate_without_a_seed_in_the_table_is_refused() -> None:
    plan = RunPlan(master_seed=5, replicates=3)
    with pytest.raises(TaskMessageError, match="replicate 2"):
        check_cells([["baseline", 2, plan.seed(2)]], plan, [plan.seed(0), plan.seed(1)], "run-1")
