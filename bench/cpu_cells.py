"""The CPU-bound experiment of bench/cpu.py: each cell runs ``ITERS`` rounds of
``a = tanh(a @ b)`` on a 96 x 96 matrix drawn from the cell's generator (``ctx.rng``).

``ITERS`` comes from ``BENCH_CPU_ITERS`` (bench/cpu.py sizes it to ~50 ms on the machine
and gives the workers the same value: it is a step parameter, so it is in the fingerprint).
BLAS is pinned to one thread per process so a cell uses one core.

    BENCH_CPU_ITERS=200 crystallize-dist submit bench/cpu_cells.py --replicates 40
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads: one BLAS thread per process

from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from crystallize_dist import (  # noqa: E402
    DataSource,
    Experiment,
    FrozenContext,
    Pipeline,
    PipelineStep,
)

SIZE = 96
ITERS = int(os.environ.get("BENCH_CPU_ITERS", "200"))


def kernel(a: np.ndarray, iters: int) -> np.ndarray:
    """The cell's work without the framework."""
    b = a.T.copy()
    for _ in range(iters):
        a = np.tanh(a @ b)
    return a


class MatrixSource(DataSource):
    """A random square matrix from the cell's generator."""

    def __init__(self, size: int) -> None:
        self.size = size

    @property
    def params(self) -> dict[str, Any]:
        return {"size": self.size}

    def fetch(self, ctx: FrozenContext) -> np.ndarray:
        return ctx.rng.standard_normal((self.size, self.size)) / np.sqrt(self.size)


class MatmulStep(PipelineStep):
    """``iters`` rounds of ``a = tanh(a @ b)``; records the trace of the result."""

    def __init__(self, iters: int) -> None:
        self.iters = iters

    @property
    def params(self) -> dict[str, Any]:
        return {"iters": self.iters}

    def __call__(self, data: np.ndarray, ctx: FrozenContext) -> np.ndarray:
        out = kernel(data, self.iters)
        ctx.metrics.add("trace", float(np.trace(out)))
        return out


experiment = Experiment(
    datasource=MatrixSource(SIZE),
    pipeline=Pipeline([MatmulStep(ITERS)]),
    replicates=40,
    name="bench_cpu",
)
