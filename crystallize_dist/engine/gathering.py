"""Folding records that arrive in any order - pages of a run store, a pool's results -
without keeping them: each record's summary and what the fold needs of it are taken as it
comes, and the replicates are folded in canonical order once all have come.

A big run's records are many times the size of its Result (a stored record, decoded, is a
dozen objects); keeping only the summary, the metrics and the outcome of each cell keeps
the memory of reading a million-cell run near the size of its Result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from crystallize_dist.canonical import paused_gc
from crystallize_dist.engine.aggregate import Aggregator

#: what a fold reads of a record besides its summary
_OUTCOME = ("status", "seed", "metrics", "error")


def gather(
    folder: Aggregator, records: Iterable[Mapping[str, Any]], *, keep_steps: bool = True
) -> Aggregator:
    """``folder`` with ``records`` folded in canonical order (the first record of a cell
    wins; records of cells the plan does not have are left out)."""
    plan = folder.plan
    runs = plan.runs
    n = plan.replicates
    outcome: dict[str, list[Any]] = {cond: [None] * n for cond in runs}
    summaries: dict[str, list[Any]] = {cond: [None] * n for cond in runs}
    summarize = folder.summarize
    with paused_gc():
        for rec in records:
            cond = rec["condition"]
            got = outcome.get(cond)
            try:
                r = int(rec["replicate"])
            except (TypeError, ValueError):
                continue
            if got is None or not 0 <= r < n or got[r] is not None:
                continue
            slim = {key: rec[key] for key in _OUTCOME if key in rec}
            if keep_steps and rec.get("steps") is not None:
                slim["steps"] = rec["steps"]
            if rec.get("artifacts"):
                slim["artifacts"] = rec["artifacts"]
            got[r] = slim
            summaries[cond][r] = summarize(rec)
        for r in range(n):
            folder.fold(
                r,
                [outcome[cond][r] for cond in runs],
                summaries=[summaries[cond][r] for cond in runs],
            )
    return folder
