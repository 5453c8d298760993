"""Per-cell summaries: the ``provenance["cells"]`` entry of each record of a run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crystallize_dist.engine.records import CELL_RECORD_KEYS

_SUMMARY_DROPS = frozenset(
    {"condition", "replicate", "metrics", "error", "steps", "artifacts", "attempt", "tries"}
)
_WORKER_KEYS = ("host", "node", "pid")
#: the keys of a record as the cell path makes it (a record from a store has a few more)
_CELL_RECORD = frozenset(CELL_RECORD_KEYS)


class CellSummaries:
    """Makes each record's ``provenance["cells"]`` entry: seed, status, timing, attempts,
    duplicates, seeded libraries, drift and where it ran (host, node, pid - the versions
    stay in ``provenance["workers"]``), and notes when the last cell ended. Records of one
    worker usually share one stamp, so which of its keys to keep is worked out once per
    stamp."""

    def __init__(self) -> None:
        self._stamp_in: Any = None
        self._stamp_out: dict[str, Any] = {}
        self.last_end = 0.0

    def __call__(self, rec: Mapping[str, Any]) -> dict[str, Any]:
        if rec.keys() == _CELL_RECORD:  # as the cell path made it: the summary's keys are known
            return self.fresh(rec)
        out = {k: v for k, v in rec.items() if k not in _SUMMARY_DROPS}
        worker = out.pop("worker", None)
        timing = out.get("timing")
        if timing:
            try:
                end = float(timing["started"]) + float(timing["duration"])
            except (KeyError, TypeError, ValueError):
                end = 0.0
            if end > self.last_end:
                self.last_end = end
        if worker:
            out["worker"] = self._stamp(worker)
        return out

    def take(self, rec: Mapping[str, Any]) -> dict[str, Any]:
        """The summary of a record as the cell path makes it, for a record just made in this
        process and dropped once folded: its worker stamp goes in as it is."""
        timing = rec["timing"]
        end = timing["started"] + timing["duration"]
        if end > self.last_end:
            self.last_end = end
        return {
            "seed": rec["seed"],
            "status": rec["status"],
            "seeded": rec["seeded"],
            "timing": timing,
            "worker": rec["worker"],
        }

    def fresh(self, rec: Mapping[str, Any]) -> dict[str, Any]:
        """``take`` for a record as the cell path makes it that is kept elsewhere too: its
        worker stamp is copied (trimmed to host, node and pid)."""
        out = self.take(rec)
        out["worker"] = self._stamp(rec["worker"])
        return out

    def _stamp(self, worker: Mapping[str, Any]) -> dict[str, Any]:
        """Where a cell ran: host, node and pid of its worker stamp, a copy for each cell
        (they may be edited)."""
        if worker is not self._stamp_in and worker != self._stamp_in:
            self._stamp_in = worker
            self._stamp_out = {k: worker[k] for k in _WORKER_KEYS if k in worker}
        return self._stamp_out.copy()
