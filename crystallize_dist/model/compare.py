"""Paired comparisons of a treatment with the baseline (``Result.compare``).

Replicate r of every condition runs with the same seed (common random numbers), so the
differences treatment - baseline of one replicate are paired. For one treatment and metric:

- ``n`` pairs: replicates where both cells succeeded and recorded the metric (``dropped``:
  the replicates of the run that are not paired);
- ``mean_diff`` and a 95% percentile bootstrap interval of it (``COMPARE_RESAMPLES``
  resamples of the pairs);
- ``effect_size``: mean difference / sample standard deviation of the differences;
- ``p_value``: two-sided sign-flip permutation test of the mean difference, exact (all
  2**n sign patterns) up to ``EXACT_FLIP_PAIRS`` pairs, else ``COMPARE_PERMUTATIONS``
  random patterns with p = (1 + as extreme) / (1 + patterns);
- ``p_holm``: the p-values of every treatment of the metric against the same baseline,
  Holm-adjusted;
- the unpaired interval: the same bootstrap with each condition's values resampled on their
  own, so ``pairing_gain`` (unpaired width / paired width) compares like with like.

Byte-stable: the generators are seeded from the run's master seed and the names compared;
sums are taken in a fixed order (sequential sums, ``math.fsum``) and every other step is
exact, so the same run gives the same numbers on every machine. Undefined numbers (fewer
than two pairs, every difference equal) are None.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crystallize_dist.model.resampling import paired_bootstrap, sign_flip_p, unpaired_bootstrap

#: the keys of a comparison's JSON form (``result --compare --format json``)
KEYS = (
    "treatment",
    "metric",
    "n",
    "mean_diff",
    "ci_low",
    "ci_high",
    "effect_size",
    "p_value",
    "p_holm",
    "unpaired_ci_low",
    "unpaired_ci_high",
    "pairing_gain",
)


@dataclass(frozen=True)
class Comparison:
    """One treatment against the baseline on one metric (see the module docstring)."""

    treatment: str
    metric: str
    baseline: str
    n: int
    dropped: int
    mean_diff: float | None
    ci_low: float | None
    ci_high: float | None
    effect_size: float | None
    p_value: float | None
    p_holm: float | None
    unpaired_ci_low: float | None
    unpaired_ci_high: float | None
    pairing_gain: float | None
    exact: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: exactly ``KEYS``."""
        return {key: getattr(self, key) for key in KEYS}


def shown_bounds(lo: float, hi: float) -> tuple[float, float]:
    """An interval's bounds as tables print them: a bound within ``1e-12`` of zero,
    relative to the other, is zero (a mean of values that cancel exactly keeps a trace of
    rounding in its last bits, such as -2.2e-17). The JSON form keeps the numbers as they
    are."""
    scale = max(abs(lo), abs(hi)) * 1e-12
    return (0.0 if abs(lo) <= scale else lo), (0.0 if abs(hi) <= scale else hi)


def comparison_seed(master_seed: int, baseline: str, treatment: str, metric: str) -> list[int]:
    """The entropy of a comparison's generators: the run's master seed and a hash of the
    names compared (so each comparison draws its own numbers, the same every time)."""
    digest = hashlib.sha256(f"compare\0{baseline}\0{treatment}\0{metric}".encode()).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return [int(master_seed) % 2**32, *words]


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (None stays None)."""
    known = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(known):
        running = max(running, min(1.0, (len(known) - rank) * p))
        out[i] = running
    return out


def _mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (n - 1))


def compare_pairs(
    treated: Mapping[int, float],
    base: Mapping[int, float],
    *,
    replicates: int,
    entropy: Sequence[int],
) -> dict[str, Any]:
    """The statistics of one comparison (every field of ``Comparison`` but the names and
    ``p_holm``) from each condition's value per replicate."""
    paired = sorted(set(treated) & set(base))
    n = len(paired)
    empty: dict[str, Any] = {
        "n": n,
        "dropped": max(0, replicates - n),
        "mean_diff": None,
        "ci_low": None,
        "ci_high": None,
        "effect_size": None,
        "p_value": None,
        "unpaired_ci_low": None,
        "unpaired_ci_high": None,
        "pairing_gain": None,
        "exact": False,
    }
    if n == 0:
        return empty
    t = np.array([float(treated[r]) for r in paired])
    b = np.array([float(base[r]) for r in paired])
    diff = t - b
    mean, sd = _mean_sd([float(x) for x in diff])
    streams = np.random.SeedSequence(list(entropy)).spawn(3)
    boot, unboot, flips = (np.random.default_rng(s) for s in streams)
    lo, hi = paired_bootstrap(diff, boot)
    ulo, uhi = unpaired_bootstrap(t, b, unboot)
    p, exact = sign_flip_p(diff, flips)
    width = hi - lo
    return {
        **empty,
        "mean_diff": mean,
        "ci_low": lo,
        "ci_high": hi,
        "effect_size": mean / sd if sd else None,
        "p_value": p,
        "unpaired_ci_low": ulo,
        "unpaired_ci_high": uhi,
        "pairing_gain": (uhi - ulo) / width if width > 0 else None,
        "exact": exact,
    }
