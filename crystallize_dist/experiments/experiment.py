"""Crystallize's ``crystallize.experiments.experiment`` path. (compatibility alias)."""

from typing import Any

from crystallize_dist.core.builder import ExperimentBuilder
from crystallize_dist.core.cell import replicate_records
from crystallize_dist.core.execution import ReplicateResult
from crystallize_dist.core.experiment import Experiment

__all__ = [
    "_run_replicate_remote",
    "Experiment",
    "ExperimentBuilder",
]


def _run_replicate_remote(args: tuple[Any, ...]) -> ReplicateResult:
    """Crystallize's process-pool entry point: ``(experiment, rep, treatments,
    baseline_treatment)`` -> that replicate's ReplicateResult (kept for code that calls or
    patches it; our process executor sends the experiment once per worker instead)."""
    experiment, rep, treatments, baseline_treatment = args
    chosen = [*treatments, *([baseline_treatment] if baseline_treatment is not None else [])]
    spec = experiment.resolve(treatments=chosen, hypotheses=[], replicates=rep + 1)
    with experiment._running(spec):
        return ReplicateResult(replicate_records(experiment, spec, rep, spec.plan.seed(rep)))
