"""Summary statistics of a Result: n, mean, sample std and a 95% t-interval per condition
and metric (written in ``model/statistics.py``, where ``Result``'s report uses them too)."""

from __future__ import annotations

from crystallize_dist.model.statistics import summarize, summary_rows, t_critical

__all__ = ["summarize", "summary_rows", "t_critical"]
