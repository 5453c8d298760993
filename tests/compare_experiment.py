"""Experiments for the comparison and long-format tests (module level: picklable)."""

from __future__ import annotations

from typing import Any

from crystallize_dist import (
    DataSource,
    Experiment,
    FrozenContext,
    Pipeline,
    PipelineStep,
    SeedPlugin,
    Treatment,
)


class Noise(DataSource):
    """A shared draw per replicate (the same seed in every condition)."""

    def fetch(self, ctx: FrozenContext) -> float:
        return float(ctx.rng.normal())


class Measure(PipelineStep):
    """score = data + shift + small per-condition noise; fails where told; ``epochs``
    records several values of ``loss`` per cell."""

    def __init__(self, fail: tuple[tuple[str, int], ...] = (), epochs: int = 0) -> None:
        self.fail = fail
        self.epochs = epochs

    def __call__(self, data: float, ctx: FrozenContext) -> Any:
        where = (str(ctx.get("condition", "baseline")), int(ctx["replicate"]))
        if where in self.fail:
            raise RuntimeError(f"planned failure at {where[0]}:{where[1]}")
        # a draw of its own per condition (the nth of a number of draws set by the name)
        own = float(ctx.rng.normal(size=1 + len(where[0]))[-1])
        score = data + ctx.get("shift", 0.0) + 0.1 * own
        for epoch in range(self.epochs):
            ctx.metrics.add("loss", 1.0 / (epoch + 1) + score)
        return data, {"score": score, "label": "x"}

    @property
    def params(self) -> dict[str, Any]:
        return {"fail": list(self.fail), "epochs": self.epochs}


def build(
    replicates: int = 12, fail: tuple[tuple[str, int], ...] = (), epochs: int = 0
) -> Experiment:
    return Experiment(
        Noise(),
        Pipeline([Measure(fail, epochs)]),
        plugins=[SeedPlugin(seed=5)],
        treatments=[Treatment("up", {"shift": 0.3}), Treatment("same", {"shift": 0.0})],
        replicates=replicates,
        name="compare",
    )


experiment = build()
#: with a failed treatment cell, a failed baseline cell and three values of ``loss`` per cell
failing = build(fail=(("up", 2), ("baseline", 5)), epochs=3)
