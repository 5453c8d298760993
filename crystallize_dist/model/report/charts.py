"""The report's charts, drawn with matplotlib (the ``crystallize-dist[report]`` extra) as
SVG text: a distribution per metric and condition, a forest plot of paired differences per
metric, and a timeline of cells per worker.

Text from a run store (condition, metric and worker names) is drawn as glyph outlines with
math parsing off, and the page shows each chart as an image (``<img src="data:...">``), in
which a browser runs no script: nothing in a name can reach the page as markup.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from crystallize_dist.errors import ExtraMissingError
from crystallize_dist.model.compare import Comparison

#: cells past which the timeline's bars and a distribution's points become one raster image
RASTER_ABOVE = 500
_OK, _RETRY, _FAILED = "#4c78a8", "#f2a33a", "#d62728"
_STYLE = {
    "svg.fonttype": "path",
    "svg.hashsalt": "crystallize-dist",
    "text.parse_math": False,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend; ExtraMissingError without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ExtraMissingError(
            "the report's charts need matplotlib: pip install 'crystallize-dist[report]'"
        ) from exc
    return plt


@contextmanager
def _figure(width: float, height: float) -> Iterator[tuple[Any, Any, io.StringIO]]:
    plt = pyplot()
    out = io.StringIO()
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(width, height))
        try:
            yield fig, ax, out
            fig.tight_layout()
            fig.savefig(out, format="svg", metadata={"Date": None})
        finally:
            plt.close(fig)


def _short(text: str, limit: int = 28) -> str:
    """A chart label: control and format characters written as escapes (a font has no
    glyph for them), cut to ``limit`` characters."""
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def numbers(values: Sequence[Any]) -> list[float]:
    return [
        float(v)
        for v in values
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
    ]


def distribution(metric: str, by_condition: Mapping[str, Sequence[Any]]) -> str:
    """Box plots of ``metric``'s values per condition, each value a dot on top."""
    names = list(by_condition)
    data = [numbers(by_condition[c]) for c in names]
    with _figure(max(4.0, 1.1 * len(names) + 2), 3.2) as (_fig, ax, out):
        jitter = np.random.default_rng(0)
        positions = range(1, len(names) + 1)
        ax.boxplot(
            [d or [math.nan] for d in data], positions=list(positions), widths=0.5,
            showfliers=False, medianprops={"color": "#222222"},
        )  # fmt: skip
        for pos, values in zip(positions, data, strict=True):
            xs = pos + jitter.uniform(-0.15, 0.15, len(values))
            ax.scatter(xs, values, s=8, alpha=0.6, color=_OK, rasterized=len(values) > RASTER_ABOVE)
        ax.set_xticks(list(positions), [_short(n, 16) for n in names])
        ax.set_title(_short(metric, 60))
        ax.set_ylabel("value")
    return out.getvalue()


def forest(metric: str, comparisons: Sequence[Comparison]) -> str:
    """Each treatment's mean paired difference with its 95% interval (thick) and the
    unpaired interval (thin), against the baseline at zero."""
    rows = [c for c in comparisons if c.mean_diff is not None]
    with _figure(6.4, 0.55 * max(1, len(rows)) + 1.3) as (_fig, ax, out):
        ax.axvline(0.0, color="#888888", linewidth=1, linestyle="--")
        for y, c in enumerate(reversed(rows)):
            if c.unpaired_ci_low is not None and c.unpaired_ci_high is not None:
                ax.plot([c.unpaired_ci_low, c.unpaired_ci_high], [y, y], color="#bbbbbb", lw=1)
            if c.ci_low is not None and c.ci_high is not None:
                ax.plot([c.ci_low, c.ci_high], [y, y], color=_OK, linewidth=4)
            ax.plot([c.mean_diff], [y], "o", color="#222222", markersize=5)
        ax.set_yticks(range(len(rows)), [_short(c.treatment) for c in reversed(rows)])
        ax.set_ylim(-0.7, len(rows) - 0.3)
        base = rows[0].baseline if rows else "baseline"
        ax.set_xlabel(_short(f"{metric}: treatment - {base}", 70))
        ax.set_title("paired 95% CI (thick), unpaired (thin)")
    return out.getvalue()


def timeline(lanes: Mapping[str, Sequence[Mapping[str, Any]]], start: float) -> str:
    """One lane per worker process; a bar per cell from its start to its end: blue ran
    once, orange ran more than once, red failed."""
    names = sorted(lanes)
    cells = sum(len(v) for v in lanes.values())
    raster = cells > RASTER_ABOVE
    with _figure(8.0, 0.45 * max(1, len(names)) + 1.4) as (_fig, ax, out):
        for y, name in enumerate(names):
            by_colour: dict[str, list[tuple[float, float]]] = {}
            for cell in lanes[name]:
                colour = (
                    _FAILED if cell["status"] != "ok" else _RETRY if cell["attempts"] > 1 else _OK
                )
                span = (cell["started"] - start, max(cell["duration"], 1e-4))
                by_colour.setdefault(colour, []).append(span)
            for colour, spans in by_colour.items():
                ax.broken_barh(spans, (y - 0.35, 0.7), color=colour, rasterized=raster)
        ax.set_yticks(range(len(names)), [_short(n, 32) for n in names])
        ax.set_ylim(-0.7, len(names) - 0.3)
        ax.set_xlabel("seconds since the first cell started")
        ax.set_title("cells per worker: ran once (blue), more than once (orange), failed (red)")
    return out.getvalue()
