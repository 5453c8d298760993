"""ExperimentGraph: experiments chained through their artifacts, run in dependency order.

An experiment whose datasource is an ``Artifact`` (or an ``ExperimentInput`` holding one)
that another experiment lists in its ``outputs`` runs after that experiment. Every node
runs as it would alone - its own plugins, executor and seeds. Without treatments given to
``run``, a node runs its own treatments plus those of the experiments upstream of it (its
own win on a name clash), as in Crystallize. ``strategy="resume"`` skips a node whose
last run finished every condition (see ``graph_resume.py``).
"""

from __future__ import annotations

import graphlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystallize_dist.errors import ValidationError
from crystallize_dist.model.artifact import Artifact
from crystallize_dist.model.graph_resume import plan_node
from crystallize_dist.model.inputs import ExperimentInput

if TYPE_CHECKING:
    from crystallize_dist.model.experiment import Experiment
    from crystallize_dist.model.result import Result
    from crystallize_dist.model.treatment import Treatment

#: ``await callback(status, experiment name)``: status is "running" or "completed"
ProgressCallback = Callable[[str, str], Awaitable[None]]


def _inputs(experiment: Experiment) -> list[Artifact]:
    """The artifacts an experiment's datasource reads."""
    ds = experiment.datasource
    if isinstance(ds, Artifact):
        return [ds]
    if isinstance(ds, ExperimentInput):
        return list(ds.required_outputs)
    return []


def _name(experiment: Experiment) -> str:
    if not experiment.name:
        raise ValidationError("an experiment in an ExperimentGraph must have a name")
    return experiment.name


class ExperimentGraph:
    """A directed acyclic graph of experiments: ``ExperimentGraph(a, b, c)`` infers the
    edges from their artifacts (as ``from_experiments``); ``ExperimentGraph()`` starts
    empty, for ``add_experiment`` / ``add_dependency``."""

    def __init__(self, *experiments: Experiment, name: str | None = None) -> None:
        self.name = name
        self._experiments: dict[str, Experiment] = {}
        self._upstream: dict[str, set[str]] = {}
        self._results: dict[str, Result] = {}
        if experiments:
            built = type(self).from_experiments(experiments)
            self._experiments, self._upstream = built._experiments, built._upstream
            self.name = name if name is not None else built.name

    @classmethod
    def from_experiments(cls, experiments: Iterable[Experiment]) -> ExperimentGraph:
        """The graph of ``experiments``, with an edge from each artifact's producer to each
        experiment that reads it. Every artifact read must be produced by exactly one of
        them, every experiment must be connected to the rest, and there is no cycle."""
        graph = cls()
        experiments = list(experiments)
        producers: dict[int, Experiment] = {}
        for exp in experiments:
            graph.add_experiment(exp)
            for art in exp.outputs.values():
                other = producers.setdefault(id(art), exp)
                if other is not exp:
                    raise ValidationError(
                        f"artifact '{art.name}' is produced by multiple experiments: both "
                        f"'{other.name}' and '{exp.name}'"
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
        graph.order()  # a cycle is an error here already
        graph._check_connected()
        ends = [n for n in graph._experiments if not graph.downstream(n)]
        graph.name = ends[0] if len(ends) == 1 else "ExperimentGraph"
        return graph

    @classmethod
    def from_yaml(cls, config: str | Path) -> ExperimentGraph:
        """The graph of a config folder's experiment and every experiment its datasource
        refers to (``"other#artifact"``, a sibling folder), or, given a folder of config
        folders, of all of them."""
        from crystallize_dist.model.graph_yaml import experiments_from_yaml

        return cls.from_experiments(experiments_from_yaml(config))

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

    def upstream(self, name: str) -> list[str]:
        """The experiments ``name`` reads from (runs after)."""
        return sorted(self._upstream[name])

    def downstream(self, name: str) -> list[str]:
        """The experiments that read from ``name`` (run after it)."""
        return sorted(n for n, ups in self._upstream.items() if name in ups)

    def _check_connected(self) -> None:
        if not self._experiments:
            return
        first = next(iter(self._experiments))
        seen, todo = {first}, [first]
        while todo:
            node = todo.pop()
            for nxt in [*self._upstream[node], *self.downstream(node)]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        unused = sorted(set(self._experiments) - seen)
        if unused:
            raise ValidationError(
                f"Unused experiments detected, not connected to the rest: {', '.join(unused)}"
            )

    def order(self) -> list[str]:
        """Experiment names in an order that runs every producer before its readers."""
        try:
            return list(graphlib.TopologicalSorter(self._upstream).static_order())
        except graphlib.CycleError as exc:
            loop = " -> ".join(exc.args[1])
            raise ValidationError(f"Experiment graph contains cycles: {loop}") from None

    def treatments_for(
        self, name: str, given: Sequence[Treatment] | None = None
    ) -> list[Treatment]:
        """The treatments node ``name`` runs: ``given`` when not None, else its upstream
        experiments' (recursively) merged with its own, its own winning on a name."""
        if given is not None:
            return list(given)
        merged: dict[str, Treatment] = {}
        for parent in self.upstream(name):
            merged.update((t.name, t) for t in self.treatments_for(parent))
        merged.update((t.name, t) for t in self._experiments[name].treatments)
        return list(merged.values())

    def _nodes(
        self, treatments: Sequence[Treatment] | None, strategy: str | None
    ) -> Iterator[tuple[str, Result | None, dict[str, Any]]]:
        """Each node in order: its name, its stored Result when resuming finds it done,
        else the arguments its run takes."""
        self._results = {}
        for name in self.order():
            exp = self._experiments[name]
            chosen = self.treatments_for(name, treatments)
            readers = [self._experiments[n] for n in self.downstream(name)]
            loaded, run_strategy = plan_node(exp, chosen, readers, strategy or exp.strategy)
            yield name, loaded, {"treatments": chosen, "strategy": run_strategy}

    def run(
        self,
        treatments: Sequence[Treatment] | None = None,
        replicates: int | None = None,
        strategy: str | None = None,
    ) -> dict[str, Result]:
        """Run every experiment in dependency order and return ``{name: Result}``; each
        runs ``replicates`` replicates (default: its own count)."""
        for name, loaded, options in self._nodes(treatments, strategy):
            exp = self._experiments[name]
            self._results[name] = loaded or exp.run(
                hypotheses=exp.hypotheses, replicates=replicates or exp.replicates, **options
            )
        return dict(self._results)

    async def arun(
        self,
        treatments: Sequence[Treatment] | None = None,
        replicates: int | None = None,
        strategy: str | None = None,
        progress_callback: ProgressCallback | None = None,
    ) -> dict[str, Result]:
        """Async twin of ``run``; ``progress_callback`` is awaited with ``("running",
        name)`` before a node runs and ``("completed", name)`` after it."""
        for name, loaded, options in self._nodes(treatments, strategy):
            exp = self._experiments[name]
            if loaded is None:
                if progress_callback is not None:
                    await progress_callback("running", name)
                loaded = await exp.arun(
                    hypotheses=exp.hypotheses, replicates=replicates or exp.replicates, **options
                )
            self._results[name] = loaded
            if progress_callback is not None:
                await progress_callback("completed", name)
        return dict(self._results)

    def __repr__(self) -> str:
        return f"ExperimentGraph(name={self.name!r}, experiments={self.order()})"
