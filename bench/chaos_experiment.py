"""The experiment of the chaos soak (bench/chaos.py): a draw, a step that sleeps
``CHAOS_SLEEP`` seconds (read when it runs, so the soak's serial reference runs without the
sleep and with the same fingerprint), and one treatment."""

from __future__ import annotations

import os
import time

from crystallize_dist import (
    DataSource,
    Experiment,
    FrozenContext,
    Pipeline,
    PipelineStep,
    SeedPlugin,
    Treatment,
)


class Draw(DataSource):
    def fetch(self, ctx: FrozenContext) -> float:
        return float(ctx.rng.random())


class Work(PipelineStep):
    def __call__(self, data: float, ctx: FrozenContext) -> dict[str, float]:
        time.sleep(float(os.environ.get("CHAOS_SLEEP", "0")))
        value = data + float(ctx.rng.normal()) + ctx.get("shift", 0.0)
        ctx.metrics.add("value", value)
        return {"value": value}


experiment = Experiment(
    datasource=Draw(),
    pipeline=Pipeline([Work()]),
    plugins=[SeedPlugin(seed=5)],
    treatments=[Treatment("shift", {"shift": 0.5})],
    replicates=10,
    name="chaos",
)
