"""What every report page test checks in a real browser: it loads with no console error,
asks no other address for anything, draws every chart (a screenshot of each is not blank)
and shows the run's digest."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from browser import Browser

CHARTS = """JSON.stringify([...document.querySelectorAll('figure.chart')].map(f => {
  const i = f.querySelector('img'); const r = i.getBoundingClientRect();
  return {name: f.dataset.chart, x: r.x + scrollX, y: r.y + scrollY, width: r.width,
          height: r.height, loaded: i.complete && i.naturalWidth > 0};
}))"""


def ink(png: bytes) -> tuple[float, int]:
    """The share of pixels that are not (near) white, and how many colours there are."""
    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(png))[..., :3]
    inked = float(np.mean(np.any(pixels < 0.9, axis=-1)))
    colours = len(np.unique(np.round(pixels.reshape(-1, 3) * 255).astype(int), axis=0))
    return inked, colours


@dataclass
class Page:
    """A report page as the browser showed it."""

    charts: list[str]
    digest: str
    text: str
    scripts: int


def check_page(browser: Browser, path: Path, shots: Path | None = None) -> Page:
    """Load ``path`` and check it (see the module docstring); returns what it shows."""
    browser.events.clear()
    browser.load(path.resolve().as_uri())
    assert browser.console_errors() == []
    others = [u for u in browser.requests() if not u.startswith(("file:", "data:"))]
    assert others == [], others
    charts = json.loads(browser.evaluate(CHARTS))
    assert charts, "no chart on the page"
    for chart in charts:
        assert chart["loaded"] and chart["width"] > 100 and chart["height"] > 100, chart
        png = browser.screenshot(chart)
        if shots is not None:
            (shots / f"{chart['name']}.png").write_bytes(png)
        inked, colours = ink(png)
        assert inked > 0.02 and colours > 4, (chart["name"], inked, colours)
    return Page(
        charts=[c["name"] for c in charts],
        digest=browser.evaluate("document.getElementById('digest').textContent"),
        text=browser.evaluate("document.body.innerText"),
        scripts=browser.evaluate("document.querySelectorAll('script').length"),
    )
