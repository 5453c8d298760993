"""Experiment files written into temporary folders by the bundle, drift and replay tests.

``BUNDLED`` writes the path in ``$CDIST_TEST_MARKER`` (when set) as soon as it is imported,
so a test can prove whether a worker imported it. ``CLOCK`` records the wall clock, so a
replay of it never matches.
"""

from __future__ import annotations

import shutil
from pathlib import Path

MARKER_ENV = "CDIST_TEST_MARKER"

BUNDLED = '''"""An experiment shipped to workers in a code bundle."""

import os
from pathlib import Path

from helpers_{tag} import Shift

from crystallize_dist import DataSource, Experiment, FrozenContext, Pipeline, Treatment

if os.environ.get("{marker}"):
    Path(os.environ["{marker}"]).write_text(__file__)


class Source(DataSource):
    def fetch(self, ctx: FrozenContext) -> float:
        return float(ctx.rng.random())


experiment = Experiment(
    datasource=Source(),
    pipeline=Pipeline([Shift()]),
    treatments=[Treatment("shifted", {{"shift": 1.0}})],
    replicates=4,
    name="bundled",
)
'''

HELPERS = '''"""A neighbour module: the bundle carries the whole folder."""

from crystallize_dist import FrozenContext, PipelineStep


class Shift(PipelineStep):
    def __call__(self, data: float, ctx: FrozenContext) -> float:
        value = data + ctx.get("shift", 0.0) + float(ctx.rng.random())
        ctx.metrics.add("x", value)
        return value
'''

CLOCK = '''"""A step that records the wall clock: never reproducible."""

import time

from crystallize_dist import DataSource, Experiment, FrozenContext, Pipeline, PipelineStep


class Source(DataSource):
    def fetch(self, ctx: FrozenContext) -> int:
        return 0


class Clock(PipelineStep):
    def __call__(self, data: int, ctx: FrozenContext) -> int:
        ctx.metrics.add("t", time.time_ns())
        return data


experiment = Experiment(
    datasource=Source(), pipeline=Pipeline([Clock()]), replicates=3, name="clock"
)
'''


def write_bundled(folder: Path, tag: str) -> Path:
    """``folder/exp_<tag>.py`` importing ``helpers_<tag>.py`` (unique module names, so tests
    in one process never share a cached module); returns the experiment file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"helpers_{tag}.py").write_text(HELPERS)
    path = folder / f"exp_{tag}.py"
    path.write_text(BUNDLED.format(tag=tag, marker=MARKER_ENV))
    return path


def write_clock(folder: Path, tag: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"clock_{tag}.py"
    path.write_text(CLOCK)
    return path


def hide(folder: Path) -> Path:
    """Move ``folder`` away (workers must then use the bundle); returns where it went."""
    gone = folder.with_name(folder.name + "-gone")
    n = 1
    while gone.exists():
        n += 1
        gone = folder.with_name(f"{folder.name}-gone{n}")
    shutil.move(str(folder), str(gone))
    return gone
