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

#: what a fold reads of a record besides its summary (and its steps and artifacts)
_OUTCOME = ("status", "seed", "metrics", "error", "warnings")
_ABSENT = object()


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
            kept = [rec.get(key, _ABSENT) for key in _OUTCOME]
            kept.append(rec.get("steps") if keep_steps else None)
            kept.append(rec.get("artifacts"))
            got[r] = tuple(kept)
            summaries[cond][r] = summarize(rec)
        for r in range(n):
            folder.fold(
                r,
                [_slim(outcome[cond][r]) for cond in runs],
                summaries=[summaries[cond][r] for cond in runs],
            )
    return folder


def _slim(kept: tuple[Any, ...] | None) -> dict[str, Any] | None:
    """What the fold reads of a record, from what ``gather`` kept of it (a tuple takes a
    third of a dict's memory while every record of a big run is waiting for its fold)."""
    if kept is None:
        return None
    pairs = zip(_OUTCOME, kept[:-2], strict=True)
    slim = {key: value for key, value in pairs if value is not _ABSENT}
    steps, artifacts = kept[-2:]
    if steps is not None:
        slim["steps"] = steps
    if artifacts:
        slim["artifacts"] = artifacts
    return slim
