"""Paired comparisons (``Result.compare``): hand-computed cases, scipy's tests and
intervals on the same data, dropped pairs, Holm, byte stability."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from compare_experiment import build
from scipy import stats

from crystallize_dist import Result
from crystallize_dist.errors import ComparisonError
from crystallize_dist.model.compare import KEYS, compare_pairs, holm, shown_bounds, sign_flip_p

HERE = Path(__file__).resolve().parents[1]


def _pairs(t: list[float], b: list[float], seed: int = 0) -> dict:
    return compare_pairs(
        dict(enumerate(t)), dict(enumerate(b)), replicates=len(t), entropy=[seed, 1, 2, 3, 4]
    )


def test_a_hand_computed_case() -> None:
    """Differences 1, 2, 3, 4: mean 2.5, sd sqrt(5/3), and of the 16 sign patterns only
    all-plus and all-minus reach |sum| = 10, so the exact p is 2/16."""
    out = _pairs([1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0])
    assert out["n"] == 4 and out["dropped"] == 0
    assert out["mean_diff"] == 2.5
    assert out["effect_size"] == pytest.approx(2.5 / math.sqrt(5 / 3), rel=1e-12)
    assert out["p_value"] == 2 / 16 and out["exact"]
    # bootstrap means of four values lie in [1, 4]
    assert 1.0 <= out["ci_low"] < 2.5 < out["ci_high"] <= 4.0


def test_holm_by_hand() -> None:
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, None, 0.9]) == [1.0, None, 1.0]
    assert holm([]) == []


def test_constant_differences_and_a_single_pair() -> None:
    same = _pairs([1.5, 2.5, 3.5], [1.0, 2.0, 3.0])
    assert same["mean_diff"] == 0.5 and same["ci_low"] == same["ci_high"] == 0.5
    assert same["effect_size"] is None and same["pairing_gain"] is None  # infinite: undefined
    one = _pairs([2.0], [1.0])
    assert one["n"] == 1 and one["p_value"] == 1.0 and one["effect_size"] is None
    none = compare_pairs({}, {0: 1.0}, replicates=3, entropy=[0])
    assert none["n"] == 0 and none["dropped"] == 3 and none["mean_diff"] is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_exact_sign_flip_equals_scipys_permutation_test(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t, b = rng.normal(0.3, 1, 11), rng.normal(0, 1, 11)
    p, exact = sign_flip_p(t - b, np.random.default_rng(0))
    ref = stats.permutation_test(
        (t, b),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        n_resamples=np.inf,
        alternative="two-sided",
        vectorized=True,
    )
    assert exact and p == pytest.approx(ref.pvalue, abs=1e-12)


@pytest.mark.parametrize("seed", [4, 5, 6, 7])
def test_numbers_agree_with_scipy_on_many_pairs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 200
    shared = rng.normal(0, 1, n)  # what both conditions of a replicate share
    b = shared + rng.normal(0, 0.5, n)
    t = shared + 0.1 * seed - 0.4 + rng.normal(0, 0.5, n)
    out = _pairs(list(t), list(b), seed)
    paired = stats.ttest_rel(t, b)
    assert out["mean_diff"] == pytest.approx(float(np.mean(t - b)), rel=1e-12)
    assert out["effect_size"] == pytest.approx(paired.statistic / math.sqrt(n), rel=1e-9)
    # the sign-flip test (10,000 random patterns) against the t-test and the signed-rank test
    assert out["p_value"] == pytest.approx(paired.pvalue, abs=0.02)
    assert out["p_value"] == pytest.approx(stats.wilcoxon(t, b).pvalue, abs=0.1)
    # the bootstrap intervals against the t-interval (paired) and Welch's (unpaired)
    lo, hi = paired.confidence_interval(0.95)
    width = hi - lo
    assert out["ci_low"] == pytest.approx(lo, abs=0.06 * width)
    assert out["ci_high"] == pytest.approx(hi, abs=0.06 * width)
    ulo, uhi = stats.ttest_ind(t, b, equal_var=False).confidence_interval(0.95)
    assert out["unpaired_ci_low"] == pytest.approx(ulo, abs=0.06 * (uhi - ulo))
    assert out["unpaired_ci_high"] == pytest.approx(uhi, abs=0.06 * (uhi - ulo))
    # pairing removes the shared variance: the paired interval is about 2x narrower here
    assert out["pairing_gain"] == pytest.approx((uhi - ulo) / width, rel=0.1)
    assert out["pairing_gain"] > 1.8


def test_result_compare_pairs_by_replicate_and_drops_failed_cells() -> None:
    result = build(fail=(("up", 2), ("baseline", 5))).run()
    c = result.compare("up", "score")
    # replicate 2 of "up" failed, replicate 5 of the baseline failed (its treatments drop)
    assert (c.n, c.dropped) == (10, 2)
    t = result.metrics.treatments["up"].metrics["score"]
    b = result.metrics.baseline.metrics["score"]
    assert len(t) == 10 and len(b) == 11  # flat lists: not aligned by position
    seeds = result.provenance["cells"]
    kept = [r for r in range(12) if r not in (2, 5)]
    by_rep_b = dict(zip([r for r in range(12) if r != 5], b, strict=True))
    by_rep_t = dict(zip(kept, t, strict=True))
    assert c.mean_diff == pytest.approx(float(np.mean([by_rep_t[r] - by_rep_b[r] for r in kept])))
    assert seeds["up:3"]["seed"] == seeds["baseline:3"]["seed"]
    assert c.to_dict().keys() == set(KEYS) and list(c.to_dict()) == list(KEYS)
    assert c.p_value is not None and c.p_value < 0.01 and c.pairing_gain > 3


def test_holm_runs_across_the_treatments_of_one_metric() -> None:
    result = build().run()
    family = result.comparisons(["score"])
    assert [c.treatment for c in family] == ["up", "same"]
    assert [c.p_holm for c in family] == holm([c.p_value for c in family])
    assert result.compare("same", "score").p_holm == family[1].p_holm


def test_bad_requests_are_comparison_errors() -> None:
    result = build(epochs=3).run()
    with pytest.raises(ComparisonError, match="'loss' has 3 values in cell"):
        result.compare("up", "loss")
    with pytest.raises(ComparisonError, match="unknown condition 'nope'"):
        result.compare("nope", "score")
    with pytest.raises(ComparisonError, match="unknown metric 'nope'"):
        result.compare("up", "nope")
    with pytest.raises(ComparisonError, match="not a number"):
        result.compare("up", "label")
    # every comparable metric, the others left out
    assert {c.metric for c in result.comparisons()} == {"score"}


def test_a_result_read_back_from_json_compares_the_same() -> None:
    result = build(fail=(("same", 0),)).run()
    again = Result.from_json(result.to_json() or "")
    assert [c.to_dict() for c in again.comparisons()] == [
        c.to_dict() for c in result.comparisons()
    ]


SCRIPT = """
import json, sys
sys.path.insert(0, {here!r})
from compare_experiment import build
print(json.dumps([c.to_dict() for c in build().run().comparisons()]))
"""


def test_comparisons_are_byte_stable_across_processes_and_hash_seeds() -> None:
    outs = set()
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT.format(here=str(HERE))],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        outs.add(out.stdout.splitlines()[-1])
    here = json.dumps([c.to_dict() for c in build().run().comparisons()])
    assert outs == {here}


def test_a_bound_that_is_zero_up_to_rounding_is_printed_as_zero() -> None:
    # differences that are multiples of 0.0025: a resampled mean of zero comes out -2.2e-17
    assert shown_bounds(-0.01625, -2.2e-17) == (-0.01625, 0.0)
    assert shown_bounds(-2.2e-17, 0.5) == (0.0, 0.5)
    assert shown_bounds(1e-20, 3e-20) == (1e-20, 3e-20)  # small numbers of their own
    assert shown_bounds(-0.5, 0.25) == (-0.5, 0.25)
