"""Module-level (hence picklable) data sources, steps and helpers for the core tests.

Process-pool workers rebuild these by import path, so everything an experiment run under
``ParallelExecution(executor_type="process")`` uses lives here, not inside a test function.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import numpy as np

from crystallize_dist import (
    DataSource,
    FrozenContext,
    PipelineStep,
    data_source,
    pipeline_step,
)


# --- data sources ------------------------------------------------------------------------------
class RandomSource(DataSource):
    """Doc page 000's source: draws from the global generators."""

    def fetch(self, ctx: FrozenContext) -> float:
        return random.random() + np.random.random()


class CtxRandomSource(DataSource):
    """Like RandomSource, but draws from the per-cell generators."""

    def fetch(self, ctx: FrozenContext) -> float:
        return ctx.random.random() + float(ctx.rng.random())


class ConstantSource(DataSource):
    """Returns ``value`` every time."""

    def __init__(self, value: Any = 0) -> None:
        self.value = value

    def fetch(self, ctx: FrozenContext) -> Any:
        return self.value


class ReplicateSource(DataSource):
    """Returns the replicate index."""

    def fetch(self, ctx: FrozenContext) -> int:
        return int(ctx["replicate"])


class ReplicatesAttrSource(ConstantSource):
    """A source that asks for its own number of replicates."""

    replicates = 4


# --- steps ---------------------------------------------------------------------------------
class AddRandomStep(PipelineStep):
    """Doc page 000's step: adds global random draws and records ``rand``."""

    def __call__(self, data: float, ctx: FrozenContext) -> dict[str, float]:
        val = data + random.random() + np.random.random()
        ctx.metrics.add("rand", val)
        return {"rand": val}

    @property
    def params(self) -> dict[str, Any]:
        return {}


class CtxAddRandomStep(PipelineStep):
    """Like AddRandomStep, drawing from ``ctx.random`` / ``ctx.rng``."""

    def __call__(self, data: float, ctx: FrozenContext) -> dict[str, float]:
        val = data + ctx.random.random() + float(ctx.rng.random())
        ctx.metrics.add("rand", val)
        return {"rand": val}

    @property
    def params(self) -> dict[str, Any]:
        return {}


class RecordSeedStep(PipelineStep):
    """Records the cell's ``seed_used``, replicate and a global-random draw."""

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        ctx.metrics.add("seed", ctx["seed_used"])
        ctx.metrics.add("rep", ctx["replicate"])
        ctx.metrics.add("draw", random.random())
        return data

    @property
    def params(self) -> dict[str, Any]:
        return {}


class AddStep(PipelineStep):
    """Adds ``delta`` (or the context's ``delta``) and records the result as ``value``."""

    def __init__(self, delta: int = 1) -> None:
        self.delta = delta

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        out = data + ctx.get("delta", self.delta)
        return out, {"value": out}

    @property
    def params(self) -> dict[str, Any]:
        return {"delta": self.delta}


class TwoMetricsStep(PipelineStep):
    """Records ``x`` twice per cell: ``10*r`` and ``10*r + 1``."""

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        r = ctx["replicate"]
        ctx.metrics.add("x", 10 * r)
        ctx.record("x", 10 * r + 1)
        return data

    @property
    def params(self) -> dict[str, Any]:
        return {}


class FailStep(PipelineStep):
    """Raises ``ValueError`` for the (condition, replicate) pairs in ``where``."""

    def __init__(self, where: list[tuple[str, int]]) -> None:
        self.where = [tuple(w) for w in where]

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        if (ctx["condition"], ctx["replicate"]) in self.where:
            raise ValueError(f"boom {ctx['condition']} {ctx['replicate']}")
        ctx.metrics.add("rep", ctx["replicate"])
        return data

    @property
    def params(self) -> dict[str, Any]:
        return {"where": self.where}


class WriteArtifactStep(PipelineStep):
    """Logs an artifact ``out.txt`` naming the condition and replicate."""

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        ctx.artifacts.add("out.txt", f"{ctx['condition']}:{ctx['replicate']}".encode())
        ctx.metrics.add("wrote", 1)
        return data

    @property
    def params(self) -> dict[str, Any]:
        return {}


class SlowFirstStep(PipelineStep):
    """Sleeps longer for low replicate indices, so late replicates finish first."""

    def __init__(self, replicates: int) -> None:
        self.replicates = replicates

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        time.sleep(0.03 * (self.replicates - ctx["replicate"]))
        ctx.metrics.add("rep", ctx["replicate"])
        return data

    @property
    def params(self) -> dict[str, Any]:
        return {"replicates": self.replicates}


class LockStep(PipelineStep):
    """Holds a ``threading.Lock``: it cannot be pickled."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        return data

    @property
    def params(self) -> dict[str, Any]:
        return {}


class LambdaStep(PipelineStep):
    """Holds a lambda: it cannot be pickled."""

    def __init__(self) -> None:
        self.fn = lambda x: x

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        return self.fn(data)

    @property
    def params(self) -> dict[str, Any]:
        return {}


@pipeline_step()
def add_one(data: int, ctx: FrozenContext, delta: int = 1) -> Any:
    """A decorated step whose ``delta`` can come from a treatment."""
    out = data + delta
    return out, {"val": out}


def seed_everything_doc(seed: int) -> None:
    """Doc page 000's seed function."""
    random.seed(seed)
    np.random.seed(seed % (2**32 - 1))


# --- doc page 001 ----------------------------------------------------------------------------
CONNECTS: list[int] = []


def connect(ctx: FrozenContext) -> Any:
    """Doc page 001's resource: an in-memory SQLite connection (counted per process)."""
    import sqlite3

    CONNECTS.append(threading.get_ident())
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x INTEGER)")
    return conn


@data_source
def my_source(ctx: FrozenContext, n: int = 3) -> dict[str, list[int]]:
    """Doc page 001's datasource: a few numbers."""
    return {"numbers": list(range(1, n + 1))}


@pipeline_step()
def step_one(data: dict[str, list[int]], ctx: FrozenContext, scale: int = 1) -> Any:
    """Scales the numbers (``scale`` can come from a treatment)."""
    return {"numbers": [v * scale for v in data["numbers"]]}


@pipeline_step()
def step_two(data: dict[str, list[int]], ctx: FrozenContext) -> Any:
    """Sums the numbers, plus a seeded draw, and records both."""
    total = sum(data["numbers"])
    return total, {"total": total, "draw": random.random()}


@pipeline_step()
def query(data: Any, ctx: FrozenContext, db: Any = None) -> Any:
    """Uses the ``db`` resource injected from ``initial_ctx``; records how many connections
    this process opened so far and whether the table made at connect time is there."""
    db.execute("INSERT INTO t VALUES (?)", (ctx["replicate"],))
    rows = db.execute("SELECT COUNT(*) FROM t").fetchone()[0]
    return data, {"connects": len(CONNECTS), "rows_seen": rows}
