"""crystallize-dist: Crystallize-style experiments on one core, a process pool or Celery
workers on many machines - the same result bytes whichever way they ran."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from crystallize_dist.core.aggregate import aggregate
from crystallize_dist.core.artifacts import ArtifactPlugin
from crystallize_dist.core.builder import ExperimentBuilder
from crystallize_dist.core.canonical import canonical_json
from crystallize_dist.core.cell import arun_cell, run_cell
from crystallize_dist.core.context import FrozenContext, standalone_context
from crystallize_dist.core.datasource import (
    Artifact,
    DataSource,
    ExperimentInput,
    get_datasource,
    list_datasources,
    register_datasource,
)
from crystallize_dist.core.decorators import (
    data_source,
    hypothesis,
    inject_from_ctx,
    pipeline,
    pipeline_step,
    resource_factory,
    treatment,
    verifier,
)
from crystallize_dist.core.execution import AsyncExecution, ParallelExecution, SerialExecution
from crystallize_dist.core.experiment import Experiment
from crystallize_dist.core.graph import ExperimentGraph
from crystallize_dist.core.hypothesis import Hypothesis
from crystallize_dist.core.loading import ExperimentRef, load_experiment
from crystallize_dist.core.pipeline import Pipeline
from crystallize_dist.core.plan import Cell, RunPlan
from crystallize_dist.core.plugins import BasePlugin, LoggingPlugin, SeedPlugin
from crystallize_dist.core.quick import quick_experiment
from crystallize_dist.core.result import (
    ExperimentMetrics,
    HypothesisResult,
    Result,
    TreatmentMetrics,
)
from crystallize_dist.core.seeding import default_seed_function, seed_everything
from crystallize_dist.core.step import PipelineStep
from crystallize_dist.core.treatment import Treatment
from crystallize_dist.errors import (
    ContextMutationError,
    CrystallizeError,
    MissingMetricError,
    PipelineExecutionError,
    ValidationError,
)


def __getattr__(name: str) -> Any:
    # The Celery executor imports celery; load it only when asked for.
    if name == "CeleryExecution":
        from crystallize_dist.distributed.execution import CeleryExecution

        return CeleryExecution
    raise AttributeError(f"module 'crystallize_dist' has no attribute {name!r}")


__all__ = [
    # model
    "Artifact",
    "DataSource",
    "Experiment",
    "ExperimentBuilder",
    "ExperimentGraph",
    "ExperimentInput",
    "FrozenContext",
    "Hypothesis",
    "Pipeline",
    "PipelineStep",
    "Treatment",
    # results
    "ExperimentMetrics",
    "HypothesisResult",
    "Result",
    "TreatmentMetrics",
    # plugins and executors
    "ArtifactPlugin",
    "AsyncExecution",
    "BasePlugin",
    "CeleryExecution",
    "LoggingPlugin",
    "ParallelExecution",
    "SeedPlugin",
    "SerialExecution",
    # decorators and factories
    "data_source",
    "hypothesis",
    "inject_from_ctx",
    "pipeline",
    "pipeline_step",
    "resource_factory",
    "treatment",
    "verifier",
    # helpers
    "default_seed_function",
    "get_datasource",
    "list_datasources",
    "quick_experiment",
    "register_datasource",
    "seed_everything",
    "standalone_context",
    # the cell path
    "Cell",
    "ExperimentRef",
    "RunPlan",
    "aggregate",
    "arun_cell",
    "canonical_json",
    "load_experiment",
    "run_cell",
    # errors
    "ContextMutationError",
    "CrystallizeError",
    "MissingMetricError",
    "PipelineExecutionError",
    "ValidationError",
]
