"""What a report page shows, gathered before it is drawn: the Result, and what only a run
store knows (when it was submitted, whether it is still going, the workers' heartbeats).
``ReportInput.of(result)`` makes it from a Result alone (``Result.to_html``); a run read
from a store adds the rest (``distributed/report.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class ResultView(Protocol):
    """The parts of a Result a report reads."""

    provenance: dict[str, Any]
    errors: dict[str, BaseException]

    @property
    def digest(self) -> str: ...

    @property
    def missing(self) -> list[str]: ...

    def conditions(self) -> dict[str, dict[str, list[Any]]]: ...


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def cell_spans(provenance: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each cell with a timing, as the timeline draws it: its key, worker process, start,
    duration, status, attempts and duplicate deliveries (fields read by shape)."""
    out = []
    cells = provenance.get("cells")
    for key, cell in (cells or {}).items() if isinstance(cells, Mapping) else ():
        if not isinstance(cell, Mapping) or not isinstance(cell.get("timing"), Mapping):
            continue
        started = _number(cell["timing"].get("started"))
        duration = _number(cell["timing"].get("duration"))
        if started is None or duration is None:
            continue
        stamp = cell.get("worker")
        worker: Mapping[str, Any] = stamp if isinstance(stamp, Mapping) else {}
        name = str(worker.get("node") or worker.get("host") or "?")
        pid = worker.get("pid")
        attempts = cell.get("attempts")
        dups = cell.get("duplicates")
        out.append(
            {
                "key": str(key),
                "lane": f"{name} pid {pid}" if isinstance(pid, int) else name,
                "node": name,
                "started": started,
                "duration": max(0.0, duration),
                "status": str(cell.get("status")),
                "attempts": attempts if isinstance(attempts, int) and attempts > 0 else 1,
                "duplicates": dups if isinstance(dups, int) else 0,
            }
        )
    return out


def workers_of(provenance: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The workers a Result knows of: each node (or host) that ran cells, its processes,
    cells and versions (from ``provenance["workers"]`` when the run was on workers)."""
    stamps = provenance.get("workers") if isinstance(provenance.get("workers"), Mapping) else {}
    rows: dict[str, dict[str, Any]] = {}
    for span in cell_spans(provenance):
        row = rows.setdefault(span["node"], {"node": span["node"], "pids": set(), "cells": 0})
        row["cells"] += 1
        pid = span["lane"].rpartition(" pid ")[2]
        if pid.isdigit():
            row["pids"].add(int(pid))
    out = []
    for name in sorted(set(rows) | set(stamps or {})):
        row = rows.get(name, {"node": name, "pids": set(), "cells": 0})
        stamp = (stamps or {}).get(name)
        env = stamp if isinstance(stamp, Mapping) else provenance.get("environment") or {}
        out.append(
            {
                "node": name,
                "host": str(env.get("host") or env.get("hostname") or name.rpartition("@")[2]),
                "pid": ", ".join(str(p) for p in sorted(row["pids"])) or "-",
                "cells": row["cells"],
                "versions": {
                    k: env.get(k)
                    for k in ("python", "numpy", "crystallize_dist", "celery")
                    if env.get(k)
                },
            }
        )
    return out


@dataclass
class ReportInput:
    """Everything a report page shows (see the module docstring)."""

    result: ResultView
    run_id: str | None = None
    experiment: str | None = None
    submitted: float | None = None
    duration: float | None = None
    #: why the report is partial (a run still going, cells without a record), or None
    partial: str | None = None
    #: one row per worker: node, host, pid, pool, concurrency, versions, last heartbeat...
    workers: list[dict[str, Any]] = field(default_factory=list)
    #: the determinism canary's outcome (``provenance["canary"]``), if the run had one
    canary: dict[str, Any] | None = None

    @classmethod
    def of(cls, result: ResultView) -> ReportInput:
        """A report of ``result`` alone."""
        prov = result.provenance
        spans = cell_spans(prov)
        start = min((s["started"] for s in spans), default=None)
        end = max((s["started"] + s["duration"] for s in spans), default=None)
        missing = result.missing
        canary = prov.get("canary")
        return cls(
            result=result,
            run_id=str(prov["run_id"]) if prov.get("run_id") else None,
            experiment=str(prov.get("experiment") or prov.get("experiment_ref") or "") or None,
            submitted=start,
            duration=None if start is None or end is None else end - start,
            partial=f"{len(missing)} cells have no record" if missing else None,
            workers=workers_of(prov),
            canary=dict(canary) if isinstance(canary, Mapping) else None,
        )
