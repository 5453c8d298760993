"""Verifiers of the folder experiment: a two-sided Welch t-test written with numpy only."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from crystallize_dist import verifier


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) for 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Welch's t statistic (b minus a), its degrees of freedom and the two-sided p-value."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size < 2 or y.size < 2:
        raise ValueError(f"Welch's t-test needs 2+ samples per side, got {x.size} and {y.size}")
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    diff = float(y.mean() - x.mean())
    if vx + vy == 0.0:
        return (math.copysign(math.inf, diff) if diff else 0.0), math.inf, float(diff == 0.0)
    t = diff / math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    return t, df, betainc(df / 2.0, 0.5, df / (df + t * t))


@verifier
def welch_t_test(
    baseline_samples: Mapping[str, Sequence[float]],
    treatment_samples: Mapping[str, Sequence[float]],
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Two-sided Welch t-test of one metric: ``{t_statistic, df, p_value, significant}``."""
    if len(baseline_samples) != 1:
        raise ValueError(f"welch_t_test compares one metric, got {sorted(baseline_samples)}")
    (metric,) = baseline_samples
    t, df, p = welch(baseline_samples[metric], treatment_samples[metric])
    return {"t_statistic": t, "df": df, "p_value": p, "significant": p < alpha}
