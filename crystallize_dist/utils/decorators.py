"""Crystallize's ``crystallize.utils.decorators`` path (an alias, no objects of its own)."""

from crystallize_dist.constants import (
    BASELINE_CONDITION,
    CONDITION_KEY,
    METADATA_FILENAME,
    REPLICATE_KEY,
    SEED_USED_KEY,
)
from crystallize_dist.engine.executors import (
    ParallelExecution,
    SerialExecution,
)
from crystallize_dist.engine.replicates import ReplicateResult
from crystallize_dist.model.artifacts import ArtifactPlugin
from crystallize_dist.model.context import FrozenContext
from crystallize_dist.model.datasource import DataSource
from crystallize_dist.model.decorators import (
    VerifierCallable,
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
from crystallize_dist.model.injection import (
    ResourceFactoryWrapper,
    inject_from_ctx,
    resource_factory,
)
from crystallize_dist.model.inputs import ExperimentInput
from crystallize_dist.model.optimizers import (
    BaseOptimizer,
    Objective,
)
from crystallize_dist.model.pipeline import Pipeline
from crystallize_dist.model.plugins import (
    BasePlugin,
    LoggingPlugin,
    SeedPlugin,
)
from crystallize_dist.model.result import Result
from crystallize_dist.model.step import PipelineStep
from crystallize_dist.model.step_cache import compute_hash
from crystallize_dist.model.treatment import Treatment

__all__ = [
    "BASELINE_CONDITION",
    "CONDITION_KEY",
    "METADATA_FILENAME",
    "REPLICATE_KEY",
    "SEED_USED_KEY",
    "ArtifactPlugin",
    "BaseOptimizer",
    "BasePlugin",
    "DataSource",
    "Experiment",
    "ExperimentGraph",
    "ExperimentInput",
    "FrozenContext",
    "Hypothesis",
    "LoggingPlugin",
    "Objective",
    "ParallelExecution",
    "Pipeline",
    "PipelineStep",
    "ReplicateResult",
    "ResourceFactoryWrapper",
    "Result",
    "SeedPlugin",
    "SerialExecution",
    "Treatment",
    "VerifierCallable",
    "compute_hash",
    "data_source",
    "hypothesis",
    "inject_from_ctx",
    "pipeline",
    "pipeline_step",
    "resource_factory",
    "treatment",
    "verifier",
]
