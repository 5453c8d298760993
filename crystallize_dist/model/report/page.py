"""The report page: one HTML file with its styles and charts inlined, which a browser shows
offline. Its Content-Security-Policy allows nothing but inline styles and ``data:``
images, so the page neither runs a script nor asks any other address for anything."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from crystallize_dist.model.comparisons import Comparer
from crystallize_dist.model.report import charts, sections
from crystallize_dist.model.report.data import ReportInput, cell_spans
from crystallize_dist.model.report.html import chart, esc

POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dt { font-weight: 600; } dd { margin: 0; word-break: break-all; }
table { border-collapse: collapse; margin: .6em 0; font-variant-numeric: tabular-nums; }
th, td { padding: .25em .7em; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
.partial { background: #fff3cd; border: 1px solid #e0c060; padding: .5em 1em; }
.note { color: #666; }
figure.chart { margin: 1em 0; } figure.chart img { max-width: 100%; }
.error pre { background: #f6f6f6; padding: .6em; overflow-x: auto; font-size: 12px; }
.error h3 { font-size: 1em; margin-bottom: .2em; }
"""


def _distributions(data: ReportInput) -> str:
    by_metric: dict[str, dict[str, list[Any]]] = defaultdict(dict)
    for cond, metrics in data.result.conditions().items():
        for metric, values in metrics.items():
            by_metric[metric][cond] = values
    parts = []
    for metric in sorted(by_metric):
        if not any(charts.numbers(v) for v in by_metric[metric].values()):
            continue  # nothing numeric to draw
        svg = charts.distribution(metric, by_metric[metric])
        parts.append(chart(svg, f"distribution:{metric}", f"distribution of {metric}"))
    return "<h2>Distributions</h2>" + "".join(parts) if parts else ""


def _timeline(data: ReportInput) -> str:
    spans = cell_spans(data.result.provenance)
    if not spans:
        return ""
    lanes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        lanes[span["lane"]].append(span)
    start = min(s["started"] for s in spans)
    retried = sum(1 for s in spans if s["attempts"] > 1)
    failed = sum(1 for s in spans if s["status"] != "ok")
    svg = charts.timeline(lanes, start)
    processes = "1 worker process" if len(lanes) == 1 else f"{len(lanes)} worker processes"
    return (
        "<h2>Timeline</h2>"
        f"<p>{len(spans)} cells on {processes}; {retried} ran more than "
        f"once, {failed} failed.</p>" + chart(svg, "timeline", "cells per worker over time")
    )


def render(data: ReportInput) -> str:
    """The page as text."""
    comparer = Comparer(data.result.conditions(), data.result.provenance)
    found, notes = comparer.every()
    forests = "".join(
        chart(charts.forest(metric, [c for c in found if c.metric == metric]), f"forest:{metric}",
              f"paired differences of {metric}")
        for metric in dict.fromkeys(c.metric for c in found)
    )  # fmt: skip
    title = f"crystallize-dist report: {data.run_id or 'result'}"
    body = "".join(
        [
            sections.header(data),
            sections.summary(data),
            sections.comparisons(found, notes, forests),
            _distributions(data),
            _timeline(data),
            sections.errors(data),
            sections.workers(data),
            sections.canary(data),
        ]
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def write_report(data: ReportInput, path: str | Path) -> Path:
    """Write the page of ``data`` to ``path``; returns the path."""
    charts.pyplot()  # say at once when the extra is missing
    target = Path(path)
    target.write_text(render(data), encoding="utf-8")
    return target
