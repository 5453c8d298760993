"""A run's report page from its store (``crystallize-dist report RUN``): the Result read
back (``results.load_result``), what the manifest and counters say about when it ran and
whether it is still going, and - for a run on workers - the heartbeats of its workers. The
page itself is drawn by ``model/report``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crystallize_dist.config import Settings
from crystallize_dist.distributed.nodes import NodeView, read_nodes
from crystallize_dist.distributed.results import load_result
from crystallize_dist.distributed.status import run_status
from crystallize_dist.distributed.store import RunStore
from crystallize_dist.errors import BrokerError
from crystallize_dist.model.experiment import Experiment
from crystallize_dist.model.report import ReportInput, write_report
from crystallize_dist.model.report.data import workers_of


def _with_beats(rows: list[dict[str, Any]], nodes: list[NodeView]) -> list[dict[str, Any]]:
    """The run's workers with what their heartbeats add (pool, concurrency, state)."""
    by_name = {n.node: n for n in nodes}
    out = []
    for row in rows:
        node = by_name.get(row["node"])
        if node is not None:
            row = {
                **row,
                "pool": node.pool,
                "concurrency": node.concurrency,
                "state": node.state,
                "last_beat": node.last_beat,
                "versions": row.get("versions") or node.versions,
            }
        out.append(row)
    return out


def run_report_input(
    store: RunStore,
    run_id: str,
    *,
    settings: Settings,
    local: bool,
    experiment: Experiment | None = None,
    artifacts_dir: str | Path | None = None,
) -> ReportInput:
    """What the report of ``run_id`` shows (complete or partial)."""
    result = load_result(
        store, run_id, settings=settings, experiment=experiment, artifacts_dir=artifacts_dir
    )
    status = run_status(store, run_id)
    data = ReportInput.of(result)
    data.submitted = status.created or data.submitted
    data.duration = status.elapsed
    data.experiment = status.experiment or data.experiment
    if not status.finished and not status.cancelled:
        data.partial = (
            f"run {status.state}: {status.done + status.failed} of {status.total} cells have "
            "a record"
        )
    elif result.missing:
        data.partial = f"run {status.state}: {len(result.missing)} cells have no record"
    if not local:
        try:
            data.workers = _with_beats(workers_of(result.provenance), read_nodes(settings))
        except BrokerError:
            pass  # the store is readable, the heartbeats are not: the workers as recorded
    return data


def write_run_report(
    store: RunStore,
    run_id: str,
    output: str | Path,
    *,
    settings: Settings,
    local: bool,
    experiment: Experiment | None = None,
    artifacts_dir: str | Path | None = None,
) -> ReportInput:
    """Write the report of ``run_id`` to ``output``; returns what it shows."""
    data = run_report_input(
        store,
        run_id,
        settings=settings,
        local=local,
        experiment=experiment,
        artifacts_dir=artifacts_dir,
    )
    write_report(data, output)
    return data
