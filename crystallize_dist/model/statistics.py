"""Summary statistics of a list of metric values: n, mean, sample std and a 95% t-interval
(the ``result`` table, the report's summary)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol


class HasConditions(Protocol):
    """A Result, as far as its summary reads it."""

    def conditions(self) -> Mapping[str, Mapping[str, Sequence[Any]]]: ...


# Two-sided 95% critical values of Student's t for 1..30 degrees of freedom.
_T975 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]


def t_critical(df: int) -> float:
    """Two-sided 95% critical value of Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    return 1.96 + 2.4 / df  # within 0.002 of the exact value for df > 30


def _as_float(value: float) -> float:
    """A metric value as a float; an int too big for one counts as infinite."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def summarize(values: Sequence[Any]) -> dict[str, Any]:
    """n, mean, sample std and a 95% t-interval of the numeric values."""
    nums = [_as_float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    n = len(nums)
    if n == 0:
        return {"n": len(values), "mean": None, "std": None, "ci_low": None, "ci_high": None}
    mean = math.fsum(nums) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in nums) / (n - 1)) if n > 1 else 0.0
    half = t_critical(n - 1) * std / math.sqrt(n) if n > 1 else math.nan
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def summary_rows(result: HasConditions) -> Iterator[dict[str, Any]]:
    """One row per (condition, metric), conditions in canonical order."""
    for cond, metrics in result.conditions().items():
        for metric in sorted(metrics):
            yield {"condition": cond, "metric": metric, **summarize(metrics[metric])}
