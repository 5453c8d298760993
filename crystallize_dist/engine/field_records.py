"""Records from a ReplicateResult built from Crystallize's fields (by code written for
Crystallize: a custom executor, a test) instead of from the cell path's records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.engine.records import STATUS_ERROR, STATUS_OK, describe_error
from crystallize_dist.errors import CellError
from crystallize_dist.model.result import error_to_dict

if TYPE_CHECKING:
    from crystallize_dist.engine.replicates import ReplicateResult


def _record(condition: str, replicate: int, seed: Any, **fields: Any) -> dict[str, Any]:
    return {
        "condition": condition,
        "replicate": replicate,
        "seed": seed,
        "status": STATUS_OK,
        "metrics": {},
        "error": None,
        "seeded": [],
        "steps": [],
        "artifacts": [],
        "timing": {"started": 0.0, "duration": 0.0},
        "worker": {},
        **fields,
    }


def _condition_of(key: str, replicate: int) -> tuple[str, int]:
    """``("t", 3)`` for the error key ``"t_rep_3"`` (Crystallize's key format)."""
    condition, sep, rep = key.rpartition("_rep_")
    if sep and rep.isdigit():
        return condition, int(rep)
    return key, replicate


def field_records(result: ReplicateResult, replicate: int) -> list[dict[str, Any]]:
    """Replicate ``replicate``'s records, baseline first, from ``result``'s fields (an
    error keyed ``<condition>_rep_<r>`` becomes that cell's error record)."""
    out = []
    provenance = result.provenance
    if result.baseline_metrics is not None:
        out.append(
            _record(
                BASELINE_CONDITION,
                replicate,
                result.baseline_seed,
                metrics={k: list(v) for k, v in result.baseline_metrics.items()},
                steps=list(provenance.get(BASELINE_CONDITION, [])),
            )
        )
    seeds = result.treatment_seeds
    for name, metrics in result.treatment_metrics.items():
        out.append(
            _record(
                name,
                replicate,
                seeds.get(name),
                metrics={k: list(v) for k, v in metrics.items()},
                steps=list(provenance.get(name, [])),
            )
        )
    for key, exc in result.errors.items():
        condition, rep = _condition_of(key, replicate)
        error = error_to_dict(exc) if isinstance(exc, CellError) else describe_error(exc)
        out.append(_record(condition, rep, None, status=STATUS_ERROR, error=error))
    return out
