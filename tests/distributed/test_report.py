"""The summary table's statistics (engine/summary.py)."""

from __future__ import annotations

import math

from crystallize_dist.engine.summary import summarize


def test_summary_of_numbers_strings_and_huge_integers() -> None:
    s = summarize([1.0, 2.0, 3.0])
    assert (s["n"], s["mean"], s["std"]) == (3, 2.0, 1.0)
    assert math.isclose(s["ci_high"] - s["mean"], 4.302653 / math.sqrt(3), rel_tol=1e-3)
    assert summarize(["a", "b"])["mean"] is None  # nothing numeric: no statistics
    assert summarize([True, 2])["n"] == 1  # bools are not numbers here
    huge = summarize([10**400, 1])  # too big for a float: counted as infinite, no crash
    assert huge["n"] == 2 and huge["mean"] == math.inf
    assert summarize([-(10**400)])["mean"] == -math.inf
