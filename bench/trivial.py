"""A trivial experiment for bench/overhead.py: the datasource returns 0 and one step records
one metric, so a cell's time is almost all engine overhead.

    crystallize-dist submit bench/trivial.py --replicates 5000 --cells-per-task 1
"""

from __future__ import annotations

from crystallize_dist import DataSource, Experiment, FrozenContext, Pipeline, PipelineStep


class Zero(DataSource):
    def fetch(self, ctx: FrozenContext) -> int:
        return 0


class RecordValue(PipelineStep):
    def __call__(self, data: int, ctx: FrozenContext) -> int:
        ctx.metrics.add("value", data)
        return data


experiment = Experiment(
    datasource=Zero(), pipeline=Pipeline([RecordValue()]), replicates=1, name="trivial"
)
