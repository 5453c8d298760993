"""Crystallize's ``crystallize.experiments.experiment`` path. (compatibility alias)."""

from typing import Any

from crystallize_dist.engine.cell import replicate_records
from crystallize_dist.engine.replicates import ReplicateResult
from crystallize_dist.engine.runspec import resolve
from crystallize_dist.model.builder import ExperimentBuilder
from crystallize_dist.model.experiment import Experiment

__all__ = [
    "_run_replicate_remote",
    "Experiment",
    "ExperimentBuilder",
]


def _run_replicate_remote(args: tuple[Any, ...]) -> ReplicateResult:
    """Crystallize's process-pool entry point: ``(experiment, rep, treatments,
    baseline_treatment)`` -> that replicate's ReplicateResult (kept for code that calls or
    patches it; the process executor sends the run once per worker instead)."""
    experiment, rep, treatments, baseline_treatment = args
    chosen = [*treatments, *([baseline_treatment] if baseline_treatment is not None else [])]
    spec = resolve(experiment, treatments=chosen, hypotheses=[], replicates=rep + 1)
    with experiment.running(
        treatments=spec.treatments,
        hypotheses=[],
        replicates=spec.plan.replicates,
        seed=spec.plan.master_seed,
    ):
        return ReplicateResult(replicate_records(spec, rep, spec.plan.seed(rep)))
