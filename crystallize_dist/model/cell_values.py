"""Which cell each metric value of a Result came from.

A Result's metrics are flat lists in replicate order (Crystallize's shape), holding only the
values of cells that went into it (a failed cell has none; a failed baseline drops its
replicate's treatment cells). Its provenance says where each value came from:
``value_layout`` (made by the engine's Aggregator) maps each condition to runs
``[first, stop, {metric: values per cell}]`` of consecutive replicates whose cells recorded
the same number of values of each metric. ``cell_values`` splits the flat lists back into
cells with it; ``value_rows`` gives the long format, one row per recorded value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.errors import ComparisonError

#: condition -> metric -> its flat list of values (``Result.conditions()``)
Metrics = Mapping[str, Mapping[str, list[Any]]]

#: the columns of the long format (``result --format rows``, ``Result.to_pandas``)
ROW_COLUMNS = ("condition", "replicate", "seed", "metric", "index", "value", "status", "worker")


def _status(cells: Mapping[str, Any], key: str) -> str | None:
    cell = cells.get(key)
    return cell.get("status") if isinstance(cell, Mapping) else None


def _layout(
    provenance: Mapping[str, Any], cond: str, metrics: Mapping[str, list[Any]]
) -> list[list[Any]]:
    """The condition's layout runs: from the provenance, or - for a result made without
    one - one value of each metric per cell that went into the result."""
    layout = provenance.get("value_layout")
    if isinstance(layout, Mapping):
        return list(layout.get(cond, []))
    cells = provenance.get("cells") or {}
    replicates = int(provenance.get("replicates") or 0)
    counts = {metric: 1 for metric in metrics}
    return [
        [r, r + 1, counts]
        for r in range(replicates)
        if _status(cells, f"{cond}:{r}") == "ok"
        and _status(cells, f"{BASELINE_CONDITION}:{r}") == "ok"
    ]


def cell_values(
    metrics_by_condition: Metrics, provenance: Mapping[str, Any]
) -> dict[str, dict[int, dict[str, list[Any]]]]:
    """Condition -> replicate -> metric -> the values that cell recorded, for every cell
    whose values are in the result. Raises ComparisonError when the flat lists do not
    split into cells (a result whose metrics were merged from elsewhere)."""
    out: dict[str, dict[int, dict[str, list[Any]]]] = {}
    for cond, metrics in metrics_by_condition.items():
        runs = _layout(provenance, cond, metrics)
        at: dict[str, int] = dict.fromkeys(metrics, 0)
        per: dict[int, dict[str, list[Any]]] = {}
        for first, stop, counts in runs:
            for r in range(int(first), int(stop)):
                cell: dict[str, list[Any]] = {}
                for metric, n in counts.items():
                    start = at.get(metric, 0)
                    cell[metric] = metrics.get(metric, [])[start : start + int(n)]
                    at[metric] = start + int(n)
                per[r] = cell
        for metric, values in metrics.items():
            if at.get(metric, 0) != len(values):
                raise ComparisonError(
                    f"metric '{metric}' of condition '{cond}' has {len(values)} values, but "
                    f"the result's cells account for {at.get(metric, 0)}: its values cannot "
                    "be matched to cells"
                )
        out[cond] = per
    return out


def _worker(cell: Mapping[str, Any]) -> str:
    worker = cell.get("worker")
    if not isinstance(worker, Mapping):
        return ""
    node = worker.get("node") or worker.get("host") or ""
    pid = worker.get("pid")
    return f"{node}:{pid}" if pid is not None and not worker.get("node") else str(node)


def value_rows(
    metrics_by_condition: Metrics, provenance: Mapping[str, Any]
) -> Iterator[dict[str, Any]]:
    """The long format: one row per recorded value (``ROW_COLUMNS``), conditions in plan
    order, replicates ascending, metrics by name. A failed cell is one row with status
    ``error`` and no metric; a treatment cell left out because its baseline failed is one
    row with status ``dropped``. Cells without a record have no row."""
    cells = provenance.get("cells") or {}
    replicates = int(provenance.get("replicates") or 0)
    for cond, per in cell_values(metrics_by_condition, provenance).items():
        for r in range(replicates):
            cell = cells.get(f"{cond}:{r}")
            values = per.get(r)
            if not isinstance(cell, Mapping) and values is None:
                continue
            info = cell if isinstance(cell, Mapping) else {}
            base = {"condition": cond, "replicate": r, "seed": info.get("seed")}
            worker = _worker(info)
            if values is None:
                status = "dropped" if info.get("status") == "ok" else "error"
                yield {**base, "metric": None, "index": None, "value": None, "status": status,
                       "worker": worker}  # fmt: skip
                continue
            for metric in sorted(values):
                for index, value in enumerate(values[metric]):
                    yield {**base, "metric": metric, "index": index, "value": value,
                           "status": "ok", "worker": worker}  # fmt: skip


def per_replicate(
    by_cell: Mapping[int, Mapping[str, list[Any]]], condition: str, metric: str
) -> dict[int, Any]:
    """Replicate -> the one value ``metric`` has in each cell of ``condition`` (``by_cell``:
    its entry of ``cell_values``) that recorded it; ComparisonError when a cell has several."""
    found: dict[int, Any] = {}
    for r, cell in by_cell.items():
        values = cell.get(metric)
        if not values:
            continue
        if len(values) != 1:
            raise ComparisonError(
                f"metric '{metric}' has {len(values)} values in cell {condition}:{r}; a "
                "comparison pairs one value per cell (record one number per cell, e.g. the "
                "last or the mean, under its own name)"
            )
        found[r] = values[0]
    return found
