"""Experiments for the fault tests; workers load them by file path.

Behaviour is switched by environment variables read when a step runs, so the same code
(and fingerprint) runs in the test process (fast, no faults) and in the workers:

- CDT_SLEEP: seconds each cell sleeps (default 0);
- CDT_PIDDIR: a folder where each cell writes ``<condition>:<replicate>`` -> its pid on start;
- CDT_STARTS: a file each cell appends ``<condition>:<replicate>`` to when it starts;
- CDT_POISON: ``cond:rep`` of a cell whose step always raises;
- CDT_CRASH: ``cond:rep`` of a cell whose step kills its process (os._exit);
- CDT_HANG: ``cond:rep`` of a cell that sleeps 60 s; CDT_STUBBORN=1 makes it ignore the
  exception a time limit raises, so only a hard kill stops it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

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
        cell = f"{ctx.get('condition')}:{ctx.get('replicate')}"
        piddir = os.environ.get("CDT_PIDDIR")
        if piddir:
            (Path(piddir) / cell).write_text(str(os.getpid()))
        starts = os.environ.get("CDT_STARTS")
        if starts:
            with open(starts, "a") as fh:
                fh.write(cell + "\n")
        if os.environ.get("CDT_POISON") == cell:
            raise RuntimeError(f"poisoned cell {cell}")
        if os.environ.get("CDT_CRASH") == cell:
            os._exit(17)
        if os.environ.get("CDT_HANG") == cell:
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    time.sleep(60)
                except Exception:
                    if not os.environ.get("CDT_STUBBORN"):
                        raise
        time.sleep(float(os.environ.get("CDT_SLEEP", "0")))
        value = data + float(ctx.rng.normal()) + ctx.get("shift", 0.0)
        ctx.metrics.add("value", value)
        return {"value": value}


experiment = Experiment(
    datasource=Draw(),
    pipeline=Pipeline([Work()]),
    plugins=[SeedPlugin(seed=11)],
    treatments=[Treatment("shift", {"shift": 1.0})],
    replicates=12,
    name="faults",
)
