"""Experiment: a datasource, a pipeline, treatments, hypotheses and plugins.

An experiment is what a user defines; running it is the engine's work. ``run``, ``arun``,
``apply`` and ``fingerprint`` hand the experiment to ``crystallize_dist.engine.running``,
the engine's one entry point from the model.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystallize_dist.constants import BASELINE_CONDITION, VALID_EXECUTOR_TYPES
from crystallize_dist.errors import ValidationError
from crystallize_dist.model.artifacts import ArtifactPlugin
from crystallize_dist.model.awaiting import refuse_running_loop
from crystallize_dist.model.context import FrozenContext
from crystallize_dist.model.options import check_replicates
from crystallize_dist.model.pipeline import Pipeline
from crystallize_dist.model.plugins import BasePlugin, LoggingPlugin, SeedPlugin
from crystallize_dist.model.run_state import RunState
from crystallize_dist.model.seeding import default_seed_function
from crystallize_dist.model.treatment import check_treatments

if TYPE_CHECKING:
    from crystallize_dist.model.artifact import Artifact
    from crystallize_dist.model.artifact_source import ArtifactDataSource
    from crystallize_dist.model.builder import ExperimentBuilder
    from crystallize_dist.model.datasource import DataSource
    from crystallize_dist.model.hypothesis import Hypothesis
    from crystallize_dist.model.optimizers import BaseOptimizer
    from crystallize_dist.model.result import Result
    from crystallize_dist.model.treatment import Treatment


class Experiment(RunState):
    """A Crystallize-compatible experiment (see the contract for every default)."""

    strategy: str = "rerun"
    VALID_EXECUTOR_TYPES = VALID_EXECUTOR_TYPES

    def __init__(
        self,
        datasource: DataSource,
        pipeline: Pipeline,
        plugins: list[BasePlugin] | None = None,
        *,
        description: str | None = None,
        name: str | None = None,
        initial_ctx: Mapping[str, Any] | None = None,
        outputs: Sequence[Artifact] | None = None,
        treatments: Sequence[Treatment] | None = None,
        hypotheses: Sequence[Hypothesis] | None = None,
        replicates: int = 1,
        strict_params: bool = False,
    ) -> None:
        self.datasource = datasource
        self.pipeline = pipeline
        self.name = name
        self.description = description
        self.plugins: list[BasePlugin] = plugins if plugins is not None else []
        self._initial_ctx: dict[str, Any] = dict(initial_ctx or {})
        self._setup_ctx = FrozenContext(self._initial_ctx)
        self.outputs: dict[str, Artifact] = {}
        for out in outputs or []:
            out._producer = self
            self.outputs[out.name] = out
        self._treatments = check_treatments(treatments or [])
        self._hypotheses = list(hypotheses or [])
        self._replicates = replicates
        self.id: str | None = None
        #: a treatment parameter that no step or datasource of the first replicate read
        #: fails that cell instead of giving a warning (see ``model/first_replicate.py``)
        self.strict_params = bool(strict_params)
        self._validated = False
        self.set_default_plugins()
        for plugin in self.plugins:
            plugin.init_hook(self)
        check_replicates(replicates)

    # -- attributes ------------------------------------------------------------------------
    @property
    def initial_ctx(self) -> dict[str, Any]:
        return dict(self._initial_ctx)

    @property
    def setup_ctx(self) -> FrozenContext:
        """The context every step's ``setup`` and ``teardown`` receive (``initial_ctx``)."""
        return self._setup_ctx

    def set_default_plugins(self) -> None:
        """Append ArtifactPlugin, SeedPlugin and LoggingPlugin where missing (in place)."""
        defaults: list[tuple[type, Callable[[], BasePlugin]]] = [
            (ArtifactPlugin, lambda: ArtifactPlugin(root_dir="data")),
            (SeedPlugin, lambda: SeedPlugin(auto_seed=True, seed_fn=default_seed_function)),
            (LoggingPlugin, LoggingPlugin),
        ]
        for cls, make in defaults:
            if self.get_plugin(cls) is None:
                self.plugins.append(make())

    @classmethod
    def builder(cls, name: str | None = None) -> ExperimentBuilder:
        from crystallize_dist.model.builder import ExperimentBuilder

        return ExperimentBuilder(name)

    @classmethod
    def from_yaml(cls, config_path: str | Path) -> Experiment:
        """Build an experiment from a folder's ``config.yaml`` (see model/config_folder.py)."""
        from crystallize_dist.model.config_folder import FolderLoader

        experiment: Experiment = FolderLoader(cls)(config_path)
        return experiment

    def validate(self) -> None:
        """Check that the experiment can run: a datasource and a non-empty pipeline."""
        if self.datasource is None or self.pipeline is None:
            raise ValidationError("Experiment requires datasource and pipeline")
        if not isinstance(self.pipeline, Pipeline) or not self.pipeline.steps:
            raise ValidationError("Experiment pipeline must be a Pipeline with steps")
        self._validated = True

    def _auto_validate(self) -> None:
        """``validate`` before the first run or apply, as Crystallize does."""
        if self._validated:
            return
        try:
            self.validate()
        except Exception as exc:
            print(f"Experiment validation failed: {exc}")
            raise

    def assign_id(self) -> str:
        """Set and return ``id`` as Crystallize does: the sha256 of the pickled pipeline
        signature (the artifact folder of an experiment without a name)."""
        self.id = hashlib.sha256(pickle.dumps(self.pipeline.signature())).hexdigest()
        return self.id

    def fingerprint(self) -> str:
        """A hash of the experiment's code and parameters (see engine/fingerprint.py): the
        experiment as defined, also while a run of a few of its treatments is going on."""
        from crystallize_dist.engine import running

        return running.fingerprint(self)

    # -- running ---------------------------------------------------------------------------
    def run(
        self,
        *,
        treatments: Sequence[Treatment] | None = None,
        hypotheses: Sequence[Hypothesis] | None = None,
        replicates: int | None = None,
        strategy: str | None = None,
        seed: int | None = None,
    ) -> Result:
        """Run every cell and return the aggregated Result (sync; see ``arun``)."""
        from crystallize_dist.engine import running

        refuse_running_loop(
            "an asyncio event loop is already running: Experiment.run() cannot block it"
        )
        self._auto_validate()
        return running.run(
            self,
            treatments=treatments,
            hypotheses=hypotheses,
            replicates=replicates,
            strategy=strategy,
            seed=seed,
        )

    async def arun(
        self,
        *,
        treatments: Sequence[Treatment] | None = None,
        hypotheses: Sequence[Hypothesis] | None = None,
        replicates: int | None = None,
        strategy: str | None = None,
        seed: int | None = None,
    ) -> Result:
        """Async twin of ``run``: async steps and AsyncExecution use the running loop."""
        from crystallize_dist.engine import running

        self._auto_validate()
        return await running.arun(
            self,
            treatments=treatments,
            hypotheses=hypotheses,
            replicates=replicates,
            strategy=strategy,
            seed=seed,
        )

    def apply(
        self, treatment: Treatment | str | None = None, *, data: Any = None, seed: int | None = None
    ) -> Any:
        """Run the pipeline once (one cell of replicate 0) and return its final data.

        ``data`` replaces the datasource; ``seed`` is passed to the seed function as is.
        Goes through the same cell path as ``run`` (metric tuples unpacked, async steps
        awaited); a failing step raises its own exception.
        """
        from crystallize_dist.engine import running

        self._auto_validate()
        return running.apply(self, treatment, data=data, seed=seed)

    def __repr__(self) -> str:
        return (
            f"Experiment(name={self.name!r}, steps={len(self.pipeline.steps)}, "
            f"treatments={[t.name for t in self._treatments]})"
        )

    def optimize(
        self, optimizer: BaseOptimizer, num_trials: int, replicates_per_trial: int = 1
    ) -> Treatment:
        """Run ``num_trials`` trials: each runs the treatments ``optimizer.ask()`` gives
        and tells the optimizer the mean of its objective metric over the first
        treatment's values; returns ``optimizer.get_best_treatment()``."""
        from crystallize_dist.model.optimizers import trial_values

        refuse_running_loop(
            "an asyncio event loop is already running: Experiment.optimize() cannot block it"
        )
        self.validate()
        for _ in range(num_trials):
            result = self.run(
                treatments=optimizer.ask(), hypotheses=[], replicates=replicates_per_trial
            )
            optimizer.tell(trial_values(result, optimizer.objective))
        return optimizer.get_best_treatment()

    async def aoptimize(
        self, optimizer: BaseOptimizer, num_trials: int, replicates_per_trial: int = 1
    ) -> Treatment:
        """Async twin of ``optimize`` (each trial through ``arun``)."""
        from crystallize_dist.model.optimizers import trial_values

        self.validate()
        for _ in range(num_trials):
            result = await self.arun(
                treatments=optimizer.ask(), hypotheses=[], replicates=replicates_per_trial
            )
            optimizer.tell(trial_values(result, optimizer.objective))
        return optimizer.get_best_treatment()

    def artifact_datasource(
        self,
        step: str,
        name: str = "data.json",
        condition: str = BASELINE_CONDITION,
        *,
        require_metadata: bool = False,
    ) -> ArtifactDataSource:
        """A data source giving the paths of the files ``step`` wrote as ``name`` in this
        experiment's last run, one per replicate (see ``model/artifact_source.py``)."""
        from crystallize_dist.model.artifact_source import artifact_datasource

        return artifact_datasource(self, step, name, condition, require_metadata=require_metadata)
