"""The resampling behind a paired comparison (``compare.py``): percentile bootstrap
intervals and the sign-flip permutation test, each drawn from its own seeded generator.

Every sum is taken left to right (the last column of a running sum), the same order on
every machine, so the same generator gives the same bytes everywhere.
"""

from __future__ import annotations

import math

import numpy as np

from crystallize_dist import constants as C


def _row_sums(matrix: np.ndarray) -> np.ndarray:
    """Each row's sum, added left to right (a running sum's last column: the same order
    on every machine, unlike a pairwise or vectorised reduction)."""
    out: np.ndarray = np.cumsum(matrix, axis=1)[:, -1]
    return out


def _chunks(total: int, n: int) -> list[int]:
    """Row counts of the blocks ``total`` resamples of ``n`` values are drawn in."""
    rows = max(1, min(total, 1_000_000 // max(n, 1)))
    return [min(rows, total - start) for start in range(0, total, rows)]


def _percentile(ordered: np.ndarray, q: float) -> float:
    """The q-quantile of sorted values, linearly interpolated (numpy's default)."""
    h = (len(ordered) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(ordered) - 1)
    a, b = float(ordered[lo]), float(ordered[hi])
    return a + (h - lo) * (b - a)


def _interval(means: np.ndarray) -> tuple[float, float]:
    ordered = np.sort(means, kind="stable")
    tail = (1 - C.COMPARE_LEVEL) / 2
    return _percentile(ordered, tail), _percentile(ordered, 1 - tail)


def paired_bootstrap(diff: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of ``diff`` (pairs resampled)."""
    n = len(diff)
    means = [
        _row_sums(diff[rng.integers(0, n, size=(rows, n))]) / n
        for rows in _chunks(C.COMPARE_RESAMPLES, n)
    ]
    return _interval(np.concatenate(means))


def unpaired_bootstrap(
    treated: np.ndarray, base: np.ndarray, rng: np.random.Generator
) -> tuple[float, float]:
    """95% percentile bootstrap interval of mean(treated) - mean(base), each resampled on
    its own (as if the conditions had been run with independent seeds)."""
    n, m = len(treated), len(base)
    out = []
    for rows in _chunks(C.COMPARE_RESAMPLES, max(n, m)):
        t = _row_sums(treated[rng.integers(0, n, size=(rows, n))]) / n
        b = _row_sums(base[rng.integers(0, m, size=(rows, m))]) / m
        out.append(t - b)
    return _interval(np.concatenate(out))


def sign_flip_p(diff: np.ndarray, rng: np.random.Generator) -> tuple[float, bool]:
    """Two-sided p-value of the sign-flip test of mean(diff) = 0, and whether it is exact."""
    n = len(diff)
    observed = abs(float(_row_sums(diff[None, :])[0]))
    # sums equal in exact arithmetic may differ in their last bits: count them as equal
    tol = 4 * n * np.finfo(float).eps * math.fsum(abs(float(x)) for x in diff)
    if n <= C.EXACT_FLIP_PAIRS:
        codes = np.arange(2**n, dtype=np.int64)[:, None] >> np.arange(n, dtype=np.int64)
        signs = (codes & 1) * 2.0 - 1.0
        extreme = int(np.count_nonzero(np.abs(_row_sums(signs * diff)) >= observed - tol))
        return extreme / 2**n, True
    extreme = 0
    for rows in _chunks(C.COMPARE_PERMUTATIONS, n):
        signs = rng.integers(0, 2, size=(rows, n)) * 2.0 - 1.0
        extreme += int(np.count_nonzero(np.abs(_row_sums(signs * diff)) >= observed - tol))
    return (1 + extreme) / (1 + C.COMPARE_PERMUTATIONS), False
