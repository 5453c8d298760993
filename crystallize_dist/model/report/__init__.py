"""A result's report page (``Result.to_html``, ``crystallize-dist report``): one HTML file
that works offline, its charts drawn by matplotlib (the ``crystallize-dist[report]`` extra)."""

from crystallize_dist.model.report.data import ReportInput
from crystallize_dist.model.report.page import render, write_report

__all__ = ["ReportInput", "render", "write_report"]
