"""The report page's HTML pieces: escaped text, numbers, tables, inlined charts, times."""

from __future__ import annotations

import base64
import html
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any


def esc(value: object) -> str:
    """``value`` as HTML text (quotes escaped too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def num(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}g}" if isinstance(x, float) else esc(x)


def table(head: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A table; ``rows`` hold HTML already escaped."""
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def chart(svg: str, name: str, alt: str) -> str:
    """An SVG chart as an image (a browser runs no script inside one), inlined."""
    data = base64.b64encode(svg.encode()).decode()
    return (
        f'<figure class="chart" data-chart="{esc(name)}">'
        f'<img alt="{esc(alt)}" src="data:image/svg+xml;base64,{data}"></figure>'
    )


def when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp))


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    minutes, secs = divmod(value, 60)
    return f"{int(minutes)}m{secs:04.1f}s" if minutes else f"{secs:.2f}s"
