"""The replicate as executors see it: ``replicate_fn(r)`` runs replicate r's cells in order
and returns their records as a ReplicateResult."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.engine.aggregate import Aggregator
from crystallize_dist.engine.cell import areplicate_records, replicate_records
from crystallize_dist.engine.records import STATUS_OK
from crystallize_dist.engine.runspec import RunSpec


@dataclass
class ReplicateResult:
    """The records of one replicate (baseline first), with Crystallize's old field views."""

    records: list[dict[str, Any]] = field(default_factory=list)

    def _by(self, ok: bool) -> list[dict[str, Any]]:
        return [r for r in self.records if (r["status"] == STATUS_OK) == ok]

    def _baseline(self) -> dict[str, Any] | None:
        return next((r for r in self._by(True) if r["condition"] == BASELINE_CONDITION), None)

    @property
    def baseline_metrics(self) -> dict[str, tuple[Any, ...]] | None:
        rec = self._baseline()
        return {k: tuple(v) for k, v in rec["metrics"].items()} if rec else None

    @property
    def baseline_seed(self) -> int | None:
        rec = self._baseline()
        return rec["seed"] if rec else None

    @property
    def treatment_metrics(self) -> dict[str, dict[str, tuple[Any, ...]]]:
        return {
            r["condition"]: {k: tuple(v) for k, v in r["metrics"].items()}
            for r in self._by(True)
            if r["condition"] != BASELINE_CONDITION
        }

    @property
    def treatment_seeds(self) -> dict[str, int]:
        return {
            r["condition"]: r["seed"]
            for r in self._by(True)
            if r["condition"] != BASELINE_CONDITION
        }

    @property
    def errors(self) -> dict[str, str]:
        return {
            f"{r['condition']}_rep_{r['replicate']}": r["error"]["message"] for r in self._by(False)
        }

    @property
    def provenance(self) -> dict[str, Any]:
        return {r["condition"]: r.get("steps", []) for r in self._by(True)}


class ReplicateRunner:
    """The ``replicate_fn`` executors receive: ``fn(r)`` runs replicate r's cells in order.

    It is synchronous (``acall`` is the async twin used by AsyncExecution), so a custom
    executor can hand it to any pool. ``spec`` is the run it belongs to.
    """

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.plan = spec.plan
        self._seeds = spec.plan.seeds

    def __call__(self, rep: int) -> ReplicateResult:
        return ReplicateResult(replicate_records(self.spec, rep, self._seeds[rep]))

    async def acall(self, rep: int) -> ReplicateResult:
        return ReplicateResult(await areplicate_records(self.spec, rep, self._seeds[rep]))

    def fold_all(self, bar: Any) -> Aggregator:
        """Run every replicate in order here, each folded into the run's aggregate as soon
        as it ran (SerialExecution's path: no record outlives its replicate); ``bar`` is
        told of each replicate done."""
        spec, seeds = self.spec, self._seeds
        folder = Aggregator(self.plan)
        fold, update = folder.fold, bar.update
        for rep in range(self.plan.replicates):
            fold(rep, replicate_records(spec, rep, seeds[rep]), fresh=True)
            update(1)
        return folder


def flatten_results(out: Any) -> list[dict[str, Any]]:
    """Records from what an executor returned: ReplicateResults, record lists or records
    (records that are dicts are taken as they are; other mappings are copied into dicts)."""
    records: list[dict[str, Any]] = []
    for item in out or []:
        if isinstance(item, ReplicateResult):
            records.extend(item.records)
        elif type(item) is list:  # a replicate's records, e.g. from the process pool
            records.extend(r if type(r) is dict else dict(r) for r in item)
        elif type(item) is dict:  # a record
            records.append(item)
        elif isinstance(item, Mapping):
            records.append(dict(item))
        elif isinstance(item, Iterable):
            records.extend(r if type(r) is dict else dict(r) for r in item)
        else:
            raise TypeError(f"executor returned {type(item).__name__}, expected records")
    return records
