"""crystallize-dist: Crystallize-style experiments on one core, a process pool or Celery
workers on many machines - the same result bytes whichever way they ran.

The package's rooms: ``model`` (what a user's experiment is made of: Crystallize's API),
``engine`` (plan -> cells -> aggregate, on this machine), ``distributed`` (runs through
Celery and Redis, or the embedded ``--local`` store) and ``cli``. The folders ``plugins``,
``utils``, ``experiments``, ``datasources`` and ``pipelines`` are aliases only: they give
Crystallize's module paths to the same objects.
"""

from __future__ import annotations

from typing import Any

from crystallize_dist.canonical import canonical_json
from crystallize_dist.constants import VERSION
from crystallize_dist.engine.aggregate import aggregate
from crystallize_dist.engine.cell import arun_cell, run_cell
from crystallize_dist.engine.executors import AsyncExecution, ParallelExecution, SerialExecution
from crystallize_dist.engine.plan import Cell, RunPlan
from crystallize_dist.errors import (
    ContextMutationError,
    CrystallizeError,
    MissingMetricError,
    PipelineExecutionError,
    ValidationError,
)
from crystallize_dist.model.artifact import Artifact
from crystallize_dist.model.artifacts import ArtifactPlugin
from crystallize_dist.model.builder import ExperimentBuilder
from crystallize_dist.model.context import FrozenContext, standalone_context
from crystallize_dist.model.datasource import DataSource
from crystallize_dist.model.decorators import (
    data_source,
    hypothesis,
    pipeline,
    pipeline_step,
    treatment,
    verifier,
)
from crystallize_dist.model.experiment import Experiment
from crystallize_dist.model.graph import ExperimentGraph
from crystallize_dist.model.hypothesis import Hypothesis
from crystallize_dist.model.injection import inject_from_ctx, resource_factory
from crystallize_dist.model.inputs import ExperimentInput
from crystallize_dist.model.pipeline import Pipeline
from crystallize_dist.model.plugins import BasePlugin, LoggingPlugin, SeedPlugin
from crystallize_dist.model.quick import quick_experiment
from crystallize_dist.model.references import ExperimentRef, load_experiment
from crystallize_dist.model.registry import get_datasource, list_datasources, register_datasource
from crystallize_dist.model.result import (
    ExperimentMetrics,
    HypothesisResult,
    Result,
    TreatmentMetrics,
)
from crystallize_dist.model.seeding import default_seed_function, seed_everything
from crystallize_dist.model.step import PipelineStep
from crystallize_dist.model.treatment import Treatment

__version__ = VERSION


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
