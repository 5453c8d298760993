"""Experiment files written for Crystallize 0.27 (they import ``crystallize``), as the seed
doc pages write them, for the alias tests and the integration tests."""

from __future__ import annotations

from pathlib import Path

#: doc page 000's stochastic pipeline with a SeedPlugin, imports as the page has them
PAGE_000 = '''"""Doc page 000's experiment, written for Crystallize 0.27."""

import random

import numpy as np

from crystallize import DataSource, Experiment, FrozenContext, Pipeline, PipelineStep, Treatment
from crystallize.plugins.plugins import SeedPlugin


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32 - 1))


class RandomSource(DataSource):
    def fetch(self, ctx: FrozenContext) -> float:
        return random.random() + np.random.random()


class AddRandomStep(PipelineStep):
    def __call__(self, data, ctx):
        val = data + random.random() + np.random.random() + ctx.get("shift", 0.0)
        ctx.metrics.add("rand", val)
        return {"rand": val}

    @property
    def params(self):
        return {}


experiment = Experiment(
    datasource=RandomSource(),
    pipeline=Pipeline([AddRandomStep()]),
    plugins=[SeedPlugin(seed=42, seed_fn=seed_everything)],
    treatments=[Treatment("shifted", {"shift": 1.0})],
    replicates=4,
    name="page000",
)

if __name__ == "__main__":
    print(experiment.run().digest)
'''


def write_pair(folder: Path) -> tuple[Path, Path]:
    """The Crystallize file and the same file importing ``crystallize_dist`` instead."""
    folder.mkdir(parents=True, exist_ok=True)
    original = folder / "page000.py"
    original.write_text(PAGE_000)
    switched = folder / "page000_dist.py"
    switched.write_text(PAGE_000.replace("from crystallize", "from crystallize_dist"))
    return original, switched
