"""The replicate as executors see it: ``replicate_fn(r)`` runs replicate r's cells in order
and returns their records as a ReplicateResult."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.engine.aggregate import Aggregator
from crystallize_dist.engine.cell import areplicate_records, replicate_records
from crystallize_dist.engine.field_records import field_records
from crystallize_dist.engine.records import STATUS_OK
from crystallize_dist.engine.runspec import RunSpec
from crystallize_dist.model.result import error_from_dict


class ReplicateResult:
    """What ``replicate_fn(r)`` returns: the records of one replicate (baseline first),
    read through Crystallize's fields (``baseline_metrics``, ``baseline_seed``,
    ``treatment_metrics``, ``treatment_seeds``, ``errors``, ``provenance``).

    ``ReplicateResult(records=[...])`` is what the engine makes; code written for
    Crystallize may build one from the fields instead (a custom executor, a test), and the
    engine takes it as well (see ``records_of``).
    """

    _FIELDS = (
        "baseline_metrics",
        "baseline_seed",
        "treatment_metrics",
        "treatment_seeds",
        "errors",
        "provenance",
    )

    def __init__(
        self,
        baseline_metrics: Mapping[str, Any] | None = None,
        baseline_seed: int | None = None,
        treatment_metrics: Mapping[str, Mapping[str, Any]] | None = None,
        treatment_seeds: Mapping[str, int] | None = None,
        errors: Mapping[str, BaseException] | None = None,
        provenance: Mapping[str, list[Any]] | None = None,
        *,
        records: list[dict[str, Any]] | None = None,
    ) -> None:
        self.records = records
        self._given = (
            baseline_metrics,
            baseline_seed,
            dict(treatment_metrics or {}),
            dict(treatment_seeds or {}),
            dict(errors or {}),
            dict(provenance or {}),
        )

    def _by(self, ok: bool) -> list[dict[str, Any]]:
        return [r for r in self.records or () if (r["status"] == STATUS_OK) == ok]

    def _baseline(self) -> dict[str, Any] | None:
        return next((r for r in self._by(True) if r["condition"] == BASELINE_CONDITION), None)

    @property
    def baseline_metrics(self) -> Mapping[str, Any] | None:
        if self.records is None:
            return self._given[0]
        rec = self._baseline()
        return {k: tuple(v) for k, v in rec["metrics"].items()} if rec else None

    @property
    def baseline_seed(self) -> int | None:
        if self.records is None:
            return self._given[1]
        rec = self._baseline()
        return rec["seed"] if rec else None

    @property
    def treatment_metrics(self) -> dict[str, Mapping[str, Any]]:
        if self.records is None:
            return self._given[2]
        return {
            r["condition"]: {k: tuple(v) for k, v in r["metrics"].items()}
            for r in self._by(True)
            if r["condition"] != BASELINE_CONDITION
        }

    @property
    def treatment_seeds(self) -> dict[str, int]:
        if self.records is None:
            return self._given[3]
        return {
            r["condition"]: r["seed"]
            for r in self._by(True)
            if r["condition"] != BASELINE_CONDITION
        }

    @property
    def errors(self) -> dict[str, BaseException]:
        if self.records is None:
            return self._given[4]
        return {
            f"{r['condition']}_rep_{r['replicate']}": error_from_dict(
                {**r["error"], "condition": r["condition"], "replicate": r["replicate"]}
            )
            for r in self._by(False)
        }

    @property
    def provenance(self) -> dict[str, Any]:
        if self.records is None:
            return self._given[5]
        return {r["condition"]: r.get("steps", []) for r in self._by(True)}

    def records_of(self, replicate: int) -> list[dict[str, Any]]:
        """The records, made from the fields when it was built from them (``replicate``
        is its index: the fields do not say)."""
        if self.records is not None:
            return self.records
        return field_records(self, replicate)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ReplicateResult):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._FIELDS)
        return f"ReplicateResult({fields})"


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
        return ReplicateResult(records=replicate_records(self.spec, rep, self._seeds[rep]))

    async def acall(self, rep: int) -> ReplicateResult:
        records = await areplicate_records(self.spec, rep, self._seeds[rep])
        return ReplicateResult(records=records)

    def fold_all(self, reps: Iterable[int]) -> Aggregator:
        """Run the replicates ``reps`` yields (every replicate, in order, maybe through a
        progress bar) here, each folded into the run's aggregate as soon as it ran
        (SerialExecution's path: no record outlives its replicate)."""
        spec, seeds = self.spec, self._seeds
        folder = Aggregator(self.plan)
        fold = folder.fold
        for rep in reps:
            fold(rep, replicate_records(spec, rep, seeds[rep]), fresh=True)
        return folder


def flatten_results(out: Any) -> list[dict[str, Any]]:
    """Records from what an executor returned: ReplicateResults, record lists or records
    (records that are dicts are taken as they are; other mappings are copied into dicts)."""
    records: list[dict[str, Any]] = []
    for rep, item in enumerate(out or []):
        if isinstance(item, ReplicateResult):
            records.extend(item.records_of(rep))
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
