"""Every public module path and name of Crystallize 0.27's ``crystallize`` package imports
from ``crystallize_dist`` under the same path, as the one real object (an alias module
defines nothing of its own), and through the ``crystallize`` alias as the same object."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from types import ModuleType

import pytest

# The public names of each module of crystallize-ml 0.27.0 (its Textual ``cli`` aside),
# read from the installed package: what a file written for Crystallize may import.
UPSTREAM_NAMES = {
    "crystallize": [
        "Artifact",
        "ArtifactPlugin",
        "AsyncExecution",
        "BasePlugin",
        "DataSource",
        "Experiment",
        "ExperimentBuilder",
        "ExperimentGraph",
        "ExperimentInput",
        "FrozenContext",
        "Hypothesis",
        "LoggingPlugin",
        "ParallelExecution",
        "Pipeline",
        "PipelineStep",
        "SeedPlugin",
        "SerialExecution",
        "Treatment",
        "data_source",
        "get_datasource",
        "hypothesis",
        "inject_from_ctx",
        "list_datasources",
        "pipeline",
        "pipeline_step",
        "quick_experiment",
        "register_datasource",
        "resource_factory",
        "standalone_context",
        "treatment",
        "verifier",
    ],
    "crystallize.datasources": ["Artifact", "ArtifactLog"],
    "crystallize.datasources.artifacts": [
        "Artifact",
        "ArtifactLog",
        "ArtifactPlugin",
        "ArtifactRecord",
        "BASELINE_CONDITION",
        "ContextMutationError",
        "DataSource",
        "METADATA_FILENAME",
        "default_loader",
        "default_writer",
    ],
    "crystallize.datasources.datasource": [
        "DataSource",
        "ExperimentInput",
        "MultiArtifactDataSource",
    ],
    "crystallize.datasources.registry": [
        "clear_registry",
        "get_datasource",
        "list_datasources",
        "register_datasource",
        "unregister_datasource",
    ],
    "crystallize.experiments": [
        "AggregateData",
        "BaseOptimizer",
        "Experiment",
        "ExperimentGraph",
        "ExperimentMetrics",
        "Hypothesis",
        "HypothesisResult",
        "Objective",
        "ReplicateResult",
        "Result",
        "Treatment",
        "TreatmentMetrics",
    ],
    "crystallize.experiments.aggregation": [
        "AggregateData",
        "BASELINE_CONDITION",
        "ExperimentMetrics",
        "Pipeline",
        "ReplicateResult",
        "Result",
        "ResultAggregator",
    ],
    "crystallize.experiments.experiment": [
        "AggregateData",
        "Artifact",
        "ArtifactPlugin",
        "BASELINE_CONDITION",
        "BaseOptimizer",
        "BasePlugin",
        "CONDITION_KEY",
        "DataSource",
        "Experiment",
        "ExperimentInput",
        "ExperimentMetrics",
        "FrozenContext",
        "Hypothesis",
        "HypothesisResult",
        "LoggingPlugin",
        "METADATA_FILENAME",
        "Objective",
        "ParallelExecution",
        "Pipeline",
        "REPLICATE_KEY",
        "ReplicateResult",
        "Result",
        "ResultAggregator",
        "SEED_USED_KEY",
        "SeedPlugin",
        "SerialExecution",
        "Treatment",
        "TreatmentMetrics",
        "VALID_EXECUTOR_TYPES",
        "default_seed_function",
    ],
    "crystallize.experiments.experiment_builder": [
        "Artifact",
        "BasePlugin",
        "DataSource",
        "Experiment",
        "ExperimentBuilder",
        "Hypothesis",
        "Pipeline",
        "PipelineStep",
        "Treatment",
    ],
    "crystallize.experiments.experiment_graph": [
        "Artifact",
        "ArtifactPlugin",
        "BASELINE_CONDITION",
        "Experiment",
        "ExperimentGraph",
        "ExperimentInput",
        "ExperimentMetrics",
        "Result",
        "Treatment",
        "TreatmentMetrics",
        "find_experiments_root",
    ],
    "crystallize.experiments.hypothesis": ["Hypothesis", "MissingMetricError", "rank_by_p_value"],
    "crystallize.experiments.optimizers": ["BaseOptimizer", "Objective", "Treatment"],
    "crystallize.experiments.result": ["ExperimentMetrics", "HypothesisResult", "Result"],
    "crystallize.experiments.result_structs": [
        "AggregateData",
        "ExperimentMetrics",
        "HypothesisResult",
        "TreatmentMetrics",
    ],
    "crystallize.experiments.run_results": ["ReplicateResult"],
    "crystallize.experiments.treatment": ["FrozenContext", "Treatment"],
    "crystallize.pipelines": ["Pipeline", "PipelineStep"],
    "crystallize.pipelines.pipeline": [
        "FrozenContext",
        "LoggingContext",
        "Pipeline",
        "PipelineExecutionError",
        "PipelineStep",
        "compute_hash",
        "load_cache",
        "store_cache",
    ],
    "crystallize.pipelines.pipeline_step": ["FrozenContext", "PipelineStep", "compute_hash"],
    "crystallize.plugins": [
        "ArtifactPlugin",
        "AsyncExecution",
        "BasePlugin",
        "LoggingPlugin",
        "ParallelExecution",
        "SeedPlugin",
        "SerialExecution",
        "load_all_metrics",
        "load_metrics",
    ],
    "crystallize.plugins.artifacts": ["BASELINE_CONDITION", "load_all_metrics", "load_metrics"],
    "crystallize.plugins.execution": [
        "AsyncExecution",
        "BasePlugin",
        "ParallelExecution",
        "SerialExecution",
        "VALID_EXECUTOR_TYPES",
    ],
    "crystallize.plugins.plugins": [
        "ArtifactPlugin",
        "BASELINE_CONDITION",
        "BasePlugin",
        "CONDITION_KEY",
        "LoggingPlugin",
        "METADATA_FILENAME",
        "REPLICATE_KEY",
        "SEED_USED_KEY",
        "SeedPlugin",
        "default_seed_function",
    ],
    "crystallize.utils": [
        "ContextMutationError",
        "FrozenContext",
        "LoggingContext",
        "MissingMetricError",
        "PipelineExecutionError",
        "ValidationError",
        "compute_hash",
        "inject_from_ctx",
        "load_cache",
        "store_cache",
    ],
    "crystallize.utils.cache": ["cache_path", "compute_hash", "load_cache", "store_cache"],
    "crystallize.utils.constants": [
        "BASELINE_CONDITION",
        "CONDITION_KEY",
        "METADATA_FILENAME",
        "REPLICATE_KEY",
        "SEED_USED_KEY",
    ],
    "crystallize.utils.context": [
        "ArtifactLog",
        "ContextMutationError",
        "FrozenContext",
        "FrozenMetrics",
        "LoggingContext",
    ],
    "crystallize.utils.decorators": [
        "ArtifactPlugin",
        "BASELINE_CONDITION",
        "BaseOptimizer",
        "BasePlugin",
        "CONDITION_KEY",
        "DataSource",
        "Experiment",
        "ExperimentGraph",
        "ExperimentInput",
        "FrozenContext",
        "Hypothesis",
        "LoggingPlugin",
        "METADATA_FILENAME",
        "Objective",
        "ParallelExecution",
        "Pipeline",
        "PipelineStep",
        "REPLICATE_KEY",
        "ReplicateResult",
        "ResourceFactoryWrapper",
        "Result",
        "SEED_USED_KEY",
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
    ],
    "crystallize.utils.exceptions": [
        "ContextMutationError",
        "CrystallizeError",
        "MissingMetricError",
        "PipelineExecutionError",
        "ValidationError",
    ],
    "crystallize.utils.injection": ["Artifact", "FrozenContext", "inject_from_ctx"],
}

CASES = [(module, name) for module, names in UPSTREAM_NAMES.items() for name in names]
#: where real objects live: the rooms and the foundation, never an alias module
HOMES = (
    "crystallize_dist.model.",
    "crystallize_dist.engine.",
    "crystallize_dist.errors",
    "crystallize_dist.constants",
)


def ours(module: str) -> ModuleType:
    return importlib.import_module("crystallize_dist" + module[len("crystallize") :])


@pytest.mark.parametrize("module", sorted(UPSTREAM_NAMES))
def test_every_module_path_imports(module: str) -> None:
    assert ours(module) is not None


@pytest.mark.parametrize(("module", "name"), CASES, ids=[f"{m}:{n}" for m, n in CASES])
def test_every_name_is_the_one_real_object(module: str, name: str) -> None:
    obj = getattr(ours(module), name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        assert obj.__module__.startswith(HOMES), f"{name} is defined in {obj.__module__}"
        home = importlib.import_module(obj.__module__)
        assert getattr(home, obj.__name__) is obj  # one object, not a copy


def test_the_crystallize_alias_gives_the_same_objects() -> None:
    """In a fresh interpreter (the alias is process-wide): every name through ``crystallize``
    is the very crystallize_dist object."""
    code = (
        "import importlib, crystallize_dist.compat\n"
        f"names = {UPSTREAM_NAMES!r}\n"
        "for module, listed in names.items():\n"
        "    alias = importlib.import_module(module)\n"
        "    real = importlib.import_module('crystallize_dist' + module[len('crystallize'):])\n"
        "    assert alias is real, module\n"
        "    for name in listed:\n"
        "        assert getattr(alias, name) is getattr(real, name), (module, name)\n"
        "    assert real.__spec__.name == real.__name__, module  # its own spec, not the alias's\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
