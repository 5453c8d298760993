"""ExperimentGraph: experiments chained through their artifacts, run in dependency order.

An experiment whose datasource is an ``Artifact`` (or an ``ExperimentInput`` holding one)
that another experiment lists in its ``outputs`` runs after that experiment. Every node
runs as it would alone - its own plugins, executor and seeds - so each node's result is
the one ``experiment.run()`` gives.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from crystallize_dist.errors import ValidationError
from crystallize_dist.model.artifact import Artifact
from crystallize_dist.model.inputs import ExperimentInput

if TYPE_CHECKING:
    from crystallize_dist.model.experiment import Experiment
    from crystallize_dist.model.result import Result
    from crystallize_dist.model.treatment import Treatment


def _inputs(experiment: Experiment) -> list[Artifact]:
    """The artifacts an experiment's datasource reads."""
    ds = experiment.datasource
    if isinstance(ds, Artifact):
        return [ds]
    if isinstance(ds, ExperimentInput):
        return [src for src in ds.inputs.values() if isinstance(src, Artifact)]
    return []


def _name(experiment: Experiment) -> str:
    if not experiment.name:
        raise ValidationError("an experiment in an ExperimentGraph must have a name")
    return experiment.name


class ExperimentGraph:
    """A directed acyclic graph of experiments (Crystallize's ExperimentGraph)."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self._experiments: dict[str, Experiment] = {}
        self._upstream: dict[str, set[str]] = {}
        self._results: dict[str, Result] = {}

    @classmethod
    def from_experiments(cls, experiments: Iterable[Experiment]) -> ExperimentGraph:
        """The graph of ``experiments``, with an edge from each artifact's producer to each
        experiment that reads it. Every artifact read must be produced by exactly one of
        them, and every experiment must be connected to the rest."""
        graph = cls()
        experiments = list(experiments)
        producers: dict[int, Experiment] = {}
        for exp in experiments:
            graph.add_experiment(exp)
            for art in exp.outputs.values():
                other = producers.setdefault(id(art), exp)
                if other is not exp:
                    raise ValidationError(
                        f"artifact '{art.name}' is produced by both '{other.name}' and '{exp.name}'"
                    )
        for exp in experiments:
            for art in _inputs(exp):
                parent = producers.get(id(art))
                if parent is None:
                    raise ValidationError(
                        f"artifact '{art.name}' read by '{exp.name}' is produced by no "
                        "experiment of the graph"
                    )
                graph.add_dependency(exp, parent)
        graph._check_connected()
        ends = [n for n in graph._experiments if not graph._downstream(n)]
        graph.name = ends[0] if len(ends) == 1 else "ExperimentGraph"
        return graph

    def add_experiment(self, experiment: Experiment) -> None:
        """Add an experiment (a node); it needs a name."""
        name = _name(experiment)
        if self._experiments.get(name, experiment) is not experiment:
            raise ValidationError(f"two experiments of the graph are named '{name}'")
        self._experiments[name] = experiment
        self._upstream.setdefault(name, set())

    def add_dependency(self, downstream: Experiment, upstream: Experiment) -> None:
        """Run ``upstream`` before ``downstream`` (both added already)."""
        down, up = _name(downstream), _name(upstream)
        missing = [n for n in (down, up) if n not in self._experiments]
        if missing:
            raise ValidationError(f"add experiment '{missing[0]}' to the graph first")
        self._upstream[down].add(up)

    @property
    def experiments(self) -> dict[str, Experiment]:
        return dict(self._experiments)

    def _downstream(self, name: str) -> list[str]:
        return [n for n, ups in self._upstream.items() if name in ups]

    def _check_connected(self) -> None:
        if not self._experiments:
            return
        first = next(iter(self._experiments))
        seen, todo = {first}, [first]
        while todo:
            node = todo.pop()
            for nxt in [*self._upstream[node], *self._downstream(node)]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        unused = sorted(set(self._experiments) - seen)
        if unused:
            raise ValidationError(f"experiments not connected to the rest: {', '.join(unused)}")

    def order(self) -> list[str]:
        """Experiment names in an order that runs every producer before its readers."""
        try:
            return list(graphlib.TopologicalSorter(self._upstream).static_order())
        except graphlib.CycleError as exc:
            raise ValidationError(f"the experiment graph has a cycle: {exc.args[1]}") from None

    def run(
        self,
        treatments: Sequence[Treatment] | None = None,
        replicates: int | None = None,
        strategy: str = "rerun",
    ) -> dict[str, Result]:
        """Run every experiment in dependency order and return ``{name: Result}``;
        ``treatments``, ``replicates`` and ``strategy`` go to each experiment's ``run``."""
        results: dict[str, Result] = {}
        for name in self.order():
            results[name] = self._experiments[name].run(
                treatments=list(treatments) if treatments is not None else None,
                replicates=replicates,
                strategy=strategy,
            )
        self._results = results
        return results

    async def arun(
        self,
        treatments: Sequence[Treatment] | None = None,
        replicates: int | None = None,
        strategy: str = "rerun",
    ) -> dict[str, Result]:
        """Async twin of ``run`` (each experiment through ``arun``)."""
        results: dict[str, Result] = {}
        for name in self.order():
            results[name] = await self._experiments[name].arun(
                treatments=list(treatments) if treatments is not None else None,
                replicates=replicates,
                strategy=strategy,
            )
        self._results = results
        return results

    def __repr__(self) -> str:
        return f"ExperimentGraph(name={self.name!r}, experiments={self.order()})"
