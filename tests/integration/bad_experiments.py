"""Experiments that misbehave on purpose (loaded by workers by file path).

BAD_MODE (read when a cell runs) picks the misbehaviour for cells of replicate 1:
``raise-in-fetch``, ``unserialisable``, ``huge-list``, ``huge-int``.
"""

from __future__ import annotations

import os

from crystallize_dist import (
    DataSource,
    Experiment,
    FrozenContext,
    Pipeline,
    PipelineStep,
    SeedPlugin,
)


class Source(DataSource):
    def fetch(self, ctx: FrozenContext) -> float:
        if os.environ.get("BAD_MODE") == "raise-in-fetch" and ctx.get("replicate") == 1:
            raise ValueError("the datasource cannot read replicate 1")
        return float(ctx.rng.random())


class Record(PipelineStep):
    def __call__(self, data: float, ctx: FrozenContext) -> float:
        mode = os.environ.get("BAD_MODE") if ctx.get("replicate") == 1 else None
        if mode == "unserialisable":
            ctx.metrics.add("model", object())
        elif mode == "huge-list":
            ctx.metrics.add("trace", [0.5] * 200_000)
        elif mode == "huge-int":
            ctx.metrics.add("count", 10**6000)
        ctx.metrics.add("x", data)
        return data


experiment = Experiment(
    Source(), Pipeline([Record()]), plugins=[SeedPlugin(seed=3)], replicates=4, name="bad"
)
