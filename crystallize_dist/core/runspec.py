"""What a run resolves before it starts: the RunSpec, and the replicate_fn executors get."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.core.aggregate import Aggregator
from crystallize_dist.core.cell import areplicate_records, replicate_records
from crystallize_dist.core.execution import ReplicateResult
from crystallize_dist.core.pipeline import PlannedStep
from crystallize_dist.core.plan import RunPlan
from crystallize_dist.core.plugins import StepHooks
from crystallize_dist.errors import InvalidOptionError

if TYPE_CHECKING:
    from crystallize_dist.core.experiment import Experiment
    from crystallize_dist.core.hypothesis import Hypothesis
    from crystallize_dist.core.treatment import Treatment


def check_replicates(value: Any, where: str = "replicates") -> int:
    """``value`` as an int, or InvalidOptionError (also a TypeError) naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOptionError(
            f"{where} must be an integer, got {type(value).__name__} {value!r}"
        )
    return value


class ReplicateRunner:
    """The ``replicate_fn`` executors receive: ``fn(r)`` runs replicate r's cells in order.

    It is synchronous (``acall`` is the async twin used by AsyncExecution), so a custom
    executor can hand it to any pool.
    """

    def __init__(self, experiment: Experiment, spec: RunSpec) -> None:
        self.experiment = experiment
        self.spec = spec
        self.plan = spec.plan
        self._seeds = spec.plan.seeds

    def __call__(self, rep: int) -> ReplicateResult:
        return ReplicateResult(replicate_records(self.experiment, self.spec, rep, self._seeds[rep]))

    def fold_all(self, bar: Any) -> Aggregator:
        """Run every replicate in order here, each folded into the run's aggregate as soon
        as it ran (SerialExecution's path: no record outlives its replicate); ``bar`` is
        told of each replicate done."""
        experiment, spec, seeds = self.experiment, self.spec, self._seeds
        folder = Aggregator(self.plan)
        fold, update = folder.fold, bar.update
        for rep in range(self.plan.replicates):
            fold(rep, replicate_records(experiment, spec, rep, seeds[rep]), fresh=True)
            update(1)
        return folder

    async def acall(self, rep: int) -> ReplicateResult:
        records = await areplicate_records(self.experiment, self.spec, rep, self._seeds[rep])
        return ReplicateResult(records)


@dataclass
class RunSpec:
    """Everything ``run`` resolved from its arguments before running."""

    plan: RunPlan
    treatments: list[Treatment]
    baseline_treatment: Treatment | None
    hypotheses: list[Hypothesis]
    loaded: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    #: filled by ``ready``: what every cell of the run would otherwise look up again
    verbose: bool = False
    planned: list[PlannedStep] = field(default_factory=list)
    treatment_of: dict[str, Treatment | None] = field(default_factory=dict)
    hooks: StepHooks | None = None
    runs: tuple[str, ...] = ()

    def ready(self, experiment: Experiment) -> RunSpec:
        """Look up, once per run, what every cell would otherwise look up again: the steps
        with their hashes, the treatment of each condition and the verbosity. (Which plugins
        have hooks to call is worked out by the first cell - after ``before_run``, where a
        plugin may still set its hooks up.)"""
        self.verbose = experiment._verbose()
        self.planned = experiment._step_plan()
        self.treatment_of = {BASELINE_CONDITION: self.baseline_treatment}
        self.treatment_of.update((t.name, t) for t in self.treatments)
        self.hooks = None
        self.runs = self.plan.runs
        return self

    def find_hooks(self, experiment: Experiment) -> StepHooks:
        """The plugins whose per-cell hooks do something (see ``StepHooks``), worked out
        once per run by its first cell."""
        self.hooks = StepHooks.of(experiment.plugins)
        return self.hooks

    def treatment(self, condition: str) -> Treatment | None:
        """The treatment a cell of ``condition`` applies (None for a plain baseline)."""
        try:
            return self.treatment_of[condition]
        except KeyError:
            known = [t.name for t in self.treatments]
            raise InvalidOptionError(f"unknown treatment '{condition}'; known: {known}") from None
