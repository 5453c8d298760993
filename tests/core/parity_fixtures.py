"""Module-level (picklable) pieces of the executor-parity experiment.

Everything random is drawn from the per-cell generators ``ctx.rng`` / ``ctx.random``, so the
results are the same under serial, process, thread and async execution. Cells fail on
purpose: a step fails when its first draw falls below ``threshold`` (so baseline cells fail
too), and the ``fragile`` treatment's datasource fails on every replicate r with r % 7 == 3.
"""

from __future__ import annotations

import asyncio
from typing import Any

from crystallize_dist import (
    BasePlugin,
    DataSource,
    Experiment,
    FrozenContext,
    Pipeline,
    PipelineStep,
    SeedPlugin,
    Treatment,
)

MASTER_SEED = 314159
REPLICATES = 50
BASE_THRESHOLD = 0.1
FRAGILE_EVERY = 7
FRAGILE_AT = 3


def noop_seed(seed: int) -> None:
    """A seed function that leaves the global generators alone (steps use ctx.rng)."""


class DrawSource(DataSource):
    """A normal draw from ``ctx.rng``; fails when the context says ``fail_fetch``."""

    def fetch(self, ctx: FrozenContext) -> float:
        rep = int(ctx["replicate"])
        if ctx.get("fail_fetch", False) and rep % FRAGILE_EVERY == FRAGILE_AT:
            raise ConnectionError(f"source unavailable for replicate {rep}")
        return float(ctx.rng.normal())


class UnluckyStep(PipelineStep):
    """Fails when ``ctx.rng.random()`` < ``threshold``; otherwise records a noisy value."""

    def __call__(self, data: float, ctx: FrozenContext) -> float:
        u = float(ctx.rng.random())
        if u < ctx.get("threshold", BASE_THRESHOLD):
            raise ValueError(f"unlucky draw {u:.6f}")
        value = data + ctx.get("shift", 0.0) + ctx.random.gauss(0.0, 1.0)
        ctx.metrics.add("value", value)
        ctx.metrics.add("u", u)
        ctx.metrics.add("replicate", int(ctx["replicate"]))
        return value


class AsyncScaleStep(PipelineStep):
    """An ``async def`` step: yields to the loop, then scales with a ``ctx.random`` draw."""

    async def __call__(self, data: float, ctx: FrozenContext) -> tuple[float, dict[str, Any]]:
        await asyncio.sleep(0)
        factor = 1.0 + ctx.random.random()
        return data * factor, {"scaled": data * factor}


def build(*executors: BasePlugin, replicates: int = REPLICATES) -> Experiment:
    """The parity experiment: a baseline and two treatments, one of which fails to fetch."""
    return Experiment(
        datasource=DrawSource(),
        pipeline=Pipeline([UnluckyStep(), AsyncScaleStep()]),
        plugins=[SeedPlugin(seed=MASTER_SEED, seed_fn=noop_seed), *executors],
        treatments=[
            Treatment("risky", {"threshold": 0.3, "shift": 0.5}),
            Treatment("fragile", {"fail_fetch": True, "shift": -1.0}),
        ],
        replicates=replicates,
        name="parity",
    )
