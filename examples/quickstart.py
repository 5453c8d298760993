"""Quickstart: the reproducibility experiment of Crystallize's how-to page.

A stochastic datasource and step draw from ``random`` and ``numpy``; SeedPlugin seeds both
for every cell, so serial, process and distributed runs give the same digest.

    crystallize-dist submit examples/quickstart.py --local --wait
    python examples/quickstart.py
"""

from __future__ import annotations

import random

import numpy as np

from crystallize_dist import (
    DataSource,
    Experiment,
    FrozenContext,
    ParallelExecution,
    Pipeline,
    PipelineStep,
    SeedPlugin,
    Treatment,
)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32 - 1))


class RandomSource(DataSource):
    def fetch(self, ctx: FrozenContext) -> float:
        return random.random() + np.random.random()


class AddRandomStep(PipelineStep):
    def __call__(self, data: float, ctx: FrozenContext) -> dict[str, float]:
        val = data + random.random() + np.random.random() + ctx.get("shift", 0.0)
        ctx.metrics.add("rand", val)
        return {"rand": val}


def build(*plugins: object) -> Experiment:
    return Experiment(
        datasource=RandomSource(),
        pipeline=Pipeline([AddRandomStep()]),
        plugins=[SeedPlugin(seed=42, seed_fn=seed_everything), *plugins],  # type: ignore[list-item]
        treatments=[Treatment("shifted", {"shift": 0.5})],
        replicates=20,
        name="quickstart",
    )


experiment = build()

if __name__ == "__main__":
    serial = build().run()
    process = build(ParallelExecution(executor_type="process", max_workers=2)).run()
    print("serial  digest:", serial.digest)
    print("process digest:", process.digest)
    assert serial.digest == process.digest
