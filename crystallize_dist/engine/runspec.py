"""RunSpec: what a run resolves before it starts, from the experiment and the run's options.

``resolve`` turns ``run``'s arguments (treatments, hypotheses, replicates, seed, strategy)
into a RunSpec whose plan fixes every cell's seed, and looks up once per run what every cell
would otherwise look up again: the steps with their hashes, the treatment of each condition
and the verbosity. The engine sees an experiment through the ``Runnable`` protocol, which
``Experiment`` satisfies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.engine.plan import RunPlan
from crystallize_dist.errors import InvalidOptionError, ValidationError
from crystallize_dist.model.artifacts import ArtifactPlugin
from crystallize_dist.model.options import check_replicates, check_seed
from crystallize_dist.model.plugins import ExperimentLike, LoggingPlugin, SeedPlugin, StepHooks
from crystallize_dist.model.seeding import SEED_MODULUS
from crystallize_dist.model.treatment import check_treatments

if TYPE_CHECKING:
    from crystallize_dist.model.context import FrozenContext
    from crystallize_dist.model.datasource import DataSource
    from crystallize_dist.model.hypothesis import Hypothesis
    from crystallize_dist.model.pipeline import Pipeline
    from crystallize_dist.model.step_loop import PlannedStep
    from crystallize_dist.model.treatment import Treatment


class Runnable(ExperimentLike, Protocol):
    """What the engine uses of an experiment (``Experiment`` has all of it)."""

    datasource: DataSource
    pipeline: Pipeline
    strategy: str

    @property
    def hypotheses(self) -> list[Hypothesis]: ...

    @hypotheses.setter
    def hypotheses(self, value: Iterable[Hypothesis]) -> None: ...

    @property
    def initial_ctx(self) -> dict[str, Any]: ...

    @property
    def setup_ctx(self) -> FrozenContext: ...

    @property
    def defined_treatments(self) -> list[Treatment]: ...

    def running(
        self,
        *,
        treatments: Sequence[Treatment],
        hypotheses: Sequence[Hypothesis],
        replicates: int,
        seed: int | None = None,
    ) -> AbstractContextManager[None]: ...


_UNKNOWN: Any = object()  # a condition the run has no treatment for


@dataclass
class RunSpec:
    """Everything a run resolved before running (see ``resolve``)."""

    plan: RunPlan
    treatments: list[Treatment]
    hypotheses: list[Hypothesis]
    #: the experiment being run: plugin hooks are handed it
    experiment: Runnable
    #: metrics of the conditions a resumed run (``strategy="resume"``) does not run again
    loaded: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    verbose: bool = False
    planned: list[PlannedStep] = field(default_factory=list)
    initial: dict[str, Any] = field(default_factory=dict)
    #: the treatment each condition applies (None for the baseline)
    treatment_of: dict[str, Treatment | None] = field(default_factory=dict)
    #: the plugins with per-cell hooks, worked out by the run's first cell (after
    #: ``before_run``, where a plugin may still set its hooks up)
    hooks: StepHooks | None = None
    runs: tuple[str, ...] = ()
    #: a treatment parameter nothing read fails its cell (see ``model/first_replicate.py``)
    strict_params: bool = False
    #: where the warning lines of first-replicate cells go in this process, each once per
    #: run (the crystallize logger); None: only into the records, whose reader says them
    say: Callable[[str], None] | None = None
    said: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.treatment_of = {BASELINE_CONDITION: None}
        self.treatment_of.update((t.name, t) for t in self.treatments)
        self.runs = self.plan.runs

    def warn(self, lines: list[str]) -> None:
        """Say each of a cell's warning ``lines`` not said before in this run (see ``say``)."""
        for line in lines:
            if self.say is not None and line not in self.said:
                self.said.add(line)
                self.say(line)

    def find_hooks(self) -> StepHooks:
        """The plugins whose per-cell hooks do something (see ``StepHooks``)."""
        self.hooks = StepHooks.of(self.experiment.plugins)
        return self.hooks

    def treatment(self, condition: str) -> Treatment | None:
        """The treatment a cell of ``condition`` applies (None for the baseline)."""
        found = self.treatment_of.get(condition, _UNKNOWN)
        if found is _UNKNOWN:
            known = [t.name for t in self.treatments]
            raise InvalidOptionError(f"unknown treatment '{condition}'; known: {known}")
        treatment: Treatment | None = found
        return treatment


def _master_seed(experiment: Runnable, seed: int | None) -> tuple[int, bool]:
    """The run's master seed (``seed``, else the SeedPlugin's) and whether it is derived per
    replicate (the SeedPlugin's ``auto_seed``)."""
    plugin = experiment.get_plugin(SeedPlugin)
    auto = bool(plugin.auto_seed) if plugin is not None else True
    master: Any = seed if seed is not None else (plugin.seed if plugin else 0)
    if seed is None and auto and isinstance(master, int) and not isinstance(master, bool):
        master %= SEED_MODULUS  # SeedPlugin takes any int: the formula is mod 2**32 anyway
    return check_seed(master, "seed"), auto


def resolve(
    experiment: Runnable,
    *,
    treatments: Sequence[Treatment] | None = None,
    hypotheses: Sequence[Hypothesis] | None = None,
    replicates: int | None = None,
    seed: int | None = None,
    strategy: str | None = None,
    plan: RunPlan | None = None,
) -> RunSpec:
    """The RunSpec of a run of ``experiment`` with these arguments (None: the experiment's
    own). Treatment names are checked again (``check_treatments``: a name changed after
    construction counts too). ``plan`` replaces the plan worked out here (a worker takes the
    run's manifest as the truth)."""
    active = check_treatments(experiment.treatments if treatments is None else treatments)
    names = [t.name for t in active]
    hyps = list(experiment.hypotheses if hypotheses is None else hypotheses)
    if replicates is None:
        ds_reps = getattr(experiment.datasource, "replicates", None)
        replicates = ds_reps if ds_reps else experiment.replicates
    reps = max(1, check_replicates(replicates))
    if hyps and not active:
        raise ValidationError("Cannot verify hypotheses without treatments")
    loaded: dict[str, dict[str, list[Any]]] = {}
    if plan is None:
        master, auto = _master_seed(experiment, seed)
        if (strategy or experiment.strategy) == "resume":
            artifacts = experiment.get_plugin(ArtifactPlugin)
            if artifacts is not None:
                loaded = artifacts.completed_conditions(experiment, [BASELINE_CONDITION, *names])
        plan = RunPlan(master, reps, tuple(names), auto, frozenset(loaded))
    logging_plugin = experiment.get_plugin(LoggingPlugin)
    return RunSpec(
        plan,
        active,
        hyps,
        experiment,
        loaded,
        verbose=bool(logging_plugin.verbose) if logging_plugin is not None else False,
        planned=experiment.pipeline.plan(),
        initial=experiment.initial_ctx,
        strict_params=bool(getattr(experiment, "strict_params", False)),
        say=log_warning,
    )


def log_warning(line: str) -> None:
    """One warning line on the ``crystallize`` logger (where Crystallize's warnings go)."""
    logging.getLogger("crystallize").warning("%s", line)
