"""Every treatment against one baseline, metric by metric: the families ``Result.compare``
and ``Result.comparisons`` draw from (the statistics are in ``compare.py``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.errors import ComparisonError
from crystallize_dist.model.cell_values import Metrics, cell_values, per_replicate
from crystallize_dist.model.compare import Comparison, compare_pairs, comparison_seed, holm


def _numbers(values: Mapping[int, Any], condition: str, metric: str) -> dict[int, float]:
    """The finite numbers among a condition's values per replicate; a value that is not a
    number is an error, a NaN or infinity leaves its pair out."""
    out: dict[int, float] = {}
    for r, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ComparisonError(
                f"metric '{metric}' of {condition}:{r} is {type(value).__name__} "
                f"{str(value)[:40]!r}, not a number"
            )
        number = float(value)
        if math.isfinite(number):
            out[r] = number
    return out


class Comparer:
    """Paired comparisons of one result (its metrics by condition and its provenance)."""

    def __init__(self, metrics: Metrics, provenance: Mapping[str, Any]) -> None:
        self.metrics = metrics
        self.by_cell = cell_values(metrics, provenance)
        self.replicates = int(provenance.get("replicates") or 0)
        seed = provenance.get("master_seed")
        self.master_seed = seed if isinstance(seed, int) else 0

    def _check(self, condition: str) -> None:
        if condition not in self.metrics:
            raise ComparisonError(
                f"unknown condition '{condition}'; the result has {list(self.metrics)}"
            )

    def family(self, metric: str, baseline: str = BASELINE_CONDITION) -> list[Comparison]:
        """Every other condition against ``baseline`` on ``metric``, p-values Holm-adjusted
        across them."""
        self._check(baseline)
        if not any(metric in m for m in self.metrics.values()):
            known = sorted({k for m in self.metrics.values() for k in m})
            raise ComparisonError(f"unknown metric '{metric}'; the result has {known}")
        base = _numbers(per_replicate(self.by_cell[baseline], baseline, metric), baseline, metric)
        found = []
        for cond in self.metrics:
            if cond == baseline:
                continue
            treated = _numbers(per_replicate(self.by_cell[cond], cond, metric), cond, metric)
            stats = compare_pairs(
                treated,
                base,
                replicates=self.replicates,
                entropy=comparison_seed(self.master_seed, baseline, cond, metric),
            )
            found.append((cond, stats))
        adjusted = holm([stats["p_value"] for _, stats in found])
        return [
            Comparison(treatment=cond, metric=metric, baseline=baseline, p_holm=p, **stats)
            for (cond, stats), p in zip(found, adjusted, strict=True)
        ]

    def one(self, treatment: str, metric: str, baseline: str = BASELINE_CONDITION) -> Comparison:
        """``treatment`` against ``baseline`` on ``metric`` (its ``p_holm`` adjusted across
        every treatment of the metric)."""
        self._check(treatment)
        if treatment == baseline:
            raise ComparisonError(f"cannot compare '{treatment}' with itself")
        return next(c for c in self.family(metric, baseline) if c.treatment == treatment)

    def every(
        self, metrics: Sequence[str] | None = None, baseline: str = BASELINE_CONDITION
    ) -> tuple[list[Comparison], list[str]]:
        """Every metric's family (all metrics by name when ``metrics`` is None), and one note
        for each metric that cannot be compared (several values per cell, not numbers)."""
        self._check(baseline)
        names = list(metrics) if metrics else sorted(self.metrics.get(baseline, {}))
        out: list[Comparison] = []
        notes: list[str] = []
        for metric in names:
            try:
                out += self.family(metric, baseline)
            except ComparisonError as exc:
                if metrics:
                    raise
                notes.append(f"metric '{metric}' not compared: {exc}")
        return out, notes
