"""Crystallize's ``crystallize.experiments.experiment`` path (an alias: the objects live in
the rooms named below), with Crystallize's process-pool entry point."""

from typing import Any

from crystallize_dist.constants import (
    BASELINE_CONDITION,
    CONDITION_KEY,
    METADATA_FILENAME,
    REPLICATE_KEY,
    SEED_USED_KEY,
    VALID_EXECUTOR_TYPES,
)
from crystallize_dist.engine.cell import replicate_records
from crystallize_dist.engine.executors import ParallelExecution, SerialExecution
from crystallize_dist.engine.replicates import ReplicateResult
from crystallize_dist.engine.result_aggregator import AggregateData, ResultAggregator
from crystallize_dist.engine.runspec import resolve
from crystallize_dist.model.artifact import Artifact
from crystallize_dist.model.artifacts import ArtifactPlugin
from crystallize_dist.model.builder import ExperimentBuilder
from crystallize_dist.model.context import FrozenContext
from crystallize_dist.model.datasource import DataSource
from crystallize_dist.model.experiment import Experiment
from crystallize_dist.model.hypothesis import Hypothesis
from crystallize_dist.model.inputs import ExperimentInput
from crystallize_dist.model.optimizers import BaseOptimizer, Objective
from crystallize_dist.model.pipeline import Pipeline
from crystallize_dist.model.plugins import BasePlugin, LoggingPlugin, SeedPlugin
from crystallize_dist.model.result import (
    ExperimentMetrics,
    HypothesisResult,
    Result,
    TreatmentMetrics,
)
from crystallize_dist.model.seeding import default_seed_function
from crystallize_dist.model.treatment import Treatment

__all__ = [
    "BASELINE_CONDITION",
    "CONDITION_KEY",
    "METADATA_FILENAME",
    "REPLICATE_KEY",
    "SEED_USED_KEY",
    "VALID_EXECUTOR_TYPES",
    "AggregateData",
    "Artifact",
    "ArtifactPlugin",
    "BaseOptimizer",
    "BasePlugin",
    "DataSource",
    "Experiment",
    "ExperimentBuilder",
    "ExperimentInput",
    "ExperimentMetrics",
    "FrozenContext",
    "Hypothesis",
    "HypothesisResult",
    "LoggingPlugin",
    "Objective",
    "ParallelExecution",
    "Pipeline",
    "ReplicateResult",
    "Result",
    "ResultAggregator",
    "SeedPlugin",
    "SerialExecution",
    "Treatment",
    "TreatmentMetrics",
    "_run_replicate_remote",
    "default_seed_function",
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
        return ReplicateResult(records=replicate_records(spec, rep, spec.plan.seed(rep)))
