"""Experiments for the determinism canary's tests: a step that reads the clock (never the
same twice) and one that draws only from the cell's seeded generator."""

from __future__ import annotations

import time
from typing import Any

from crystallize_dist import DataSource, Experiment, Pipeline, PipelineStep, SeedPlugin, Treatment


class Draw(DataSource):
    """One draw from the cell's generator."""

    def fetch(self, ctx: Any) -> float:
        return float(ctx.rng.normal())


class Clocked(PipelineStep):
    """Records the time it ran: a different number every time."""

    def __call__(self, data: float, ctx: Any) -> Any:
        return data, {"x": data + ctx.get("shift", 0.0), "t": time.time()}


class Seeded(PipelineStep):
    """Records only numbers drawn from the cell's seeded generator."""

    def __call__(self, data: float, ctx: Any) -> Any:
        return data, {"x": data + ctx.get("shift", 0.0) + float(ctx.rng.normal())}


def build(step: PipelineStep) -> Experiment:
    return Experiment(
        Draw(),
        Pipeline([step]),
        plugins=[SeedPlugin(seed=3)],
        treatments=[Treatment("up", {"shift": 1.0})],
        replicates=10,
        name="canary",
    )


clock = build(Clocked())
seeded = build(Seeded())


class Slow(PipelineStep):
    """Seeded, and a second long (a run that is still going for a while)."""

    def __call__(self, data: float, ctx: Any) -> Any:
        time.sleep(1.0)
        return data, {"x": data + ctx.get("shift", 0.0)}


slow = build(Slow())
