"""Experiment: a datasource, a pipeline, treatments, hypotheses and plugins, run on the
cell path: plan (seeds fixed) -> run_cell per cell (any executor) -> aggregate."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import pickle
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crystallize_dist.constants import BASELINE_CONDITION, SEED_MODULUS
from crystallize_dist.core.aggregate import Aggregator, aggregate_into, loaded_result
from crystallize_dist.core.artifacts import ArtifactPlugin
from crystallize_dist.core.context import FrozenContext
from crystallize_dist.core.datasource import Artifact, DataSource
from crystallize_dist.core.environment import host_environment
from crystallize_dist.core.execution import SerialExecution, flatten_results
from crystallize_dist.core.fingerprint import fingerprint
from crystallize_dist.core.hypothesis import Hypothesis
from crystallize_dist.core.loops import Drive, drive_async, drive_sync
from crystallize_dist.core.pipeline import Pipeline, PlannedStep
from crystallize_dist.core.plan import RunPlan
from crystallize_dist.core.plugins import BasePlugin, LoggingPlugin, SeedPlugin, overrides_loop
from crystallize_dist.core.result import Result
from crystallize_dist.core.runspec import ReplicateRunner, RunSpec, check_replicates
from crystallize_dist.core.seeding import check_seed, default_seed_function
from crystallize_dist.core.treatment import Treatment
from crystallize_dist.errors import InvalidOptionError, ValidationError


class Experiment:
    """A Crystallize-compatible experiment (see the contract for every default)."""

    strategy: str = "rerun"

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
        self._treatments = list(treatments or [])
        self._hypotheses = list(hypotheses or [])
        self._replicates = replicates
        self.id: str | None = None
        self._validated = False
        self._planned: tuple[tuple[Any, ...], list[PlannedStep]] | None = None
        self._active: RunSpec | None = None
        self._defined_treatments: list[Treatment] | None = None  # set during a run
        self.set_default_plugins()
        for plugin in self.plugins:
            plugin.init_hook(self)
        check_replicates(replicates)

    # -- attributes ------------------------------------------------------------------------
    @property
    def treatments(self) -> list[Treatment]:
        return self._treatments

    @treatments.setter
    def treatments(self, value: Iterable[Treatment]) -> None:
        self._treatments = list(value)

    @property
    def hypotheses(self) -> list[Hypothesis]:
        return self._hypotheses

    @hypotheses.setter
    def hypotheses(self, value: Iterable[Hypothesis]) -> None:
        self._hypotheses = list(value)

    @property
    def replicates(self) -> int:
        return self._replicates

    @replicates.setter
    def replicates(self, value: int) -> None:
        self._replicates = check_replicates(value)

    @property
    def initial_ctx(self) -> dict[str, Any]:
        return dict(self._initial_ctx)

    def get_plugin(self, cls: type) -> Any:
        """The first plugin that is an instance of ``cls``, or None."""
        return next((p for p in self.plugins if isinstance(p, cls)), None)

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
    def builder(cls, name: str | None = None) -> Any:
        from crystallize_dist.core.builder import ExperimentBuilder

        return ExperimentBuilder(name)

    @classmethod
    def from_yaml(cls, config_path: str | Path) -> Experiment:
        """Build an experiment from a folder's ``config.yaml`` (see core/config_folder.py)."""
        from crystallize_dist.core.config_folder import load_config_folder

        return load_config_folder(config_path)

    def validate(self) -> None:
        """Check that the experiment can run: a datasource and a non-empty pipeline."""
        if self.datasource is None or self.pipeline is None:
            raise ValidationError("Experiment requires datasource and pipeline")
        if not isinstance(self.pipeline, Pipeline) or not self.pipeline.steps:
            raise ValidationError("Experiment pipeline must be a Pipeline with steps")
        self._validated = True

    def _auto_validate(self) -> None:
        if self._validated:
            return
        try:
            self.validate()
        except Exception as exc:
            print(f"Experiment validation failed: {exc}")
            raise

    def fingerprint(self) -> str:
        """Hash of the experiment's code and parameters (see core/fingerprint.py): the
        experiment as defined, also while a run of a few of its treatments is going on."""
        return fingerprint(self, self._defined_treatments)

    # -- internals used by run_cell ---------------------------------------------------------
    def _verbose(self) -> bool:
        plugin = self.get_plugin(LoggingPlugin)
        return bool(plugin.verbose) if plugin is not None else False

    def _step_plan(self) -> list[PlannedStep]:
        """The pipeline's steps with their names, params and ``step_hash`` (see
        ``Pipeline.plan``), cached while the steps and their params are unchanged (hashing
        reads source, too slow to repeat per cell; a stale hash would hit the wrong cache
        entry after the pipeline or a step's params change)."""
        steps = self.pipeline.steps
        key = tuple((id(s), type(s).__qualname__, repr(s.params), s.cacheable) for s in steps)
        if self._planned is None or self._planned[0] != key:
            self._planned = (key, self.pipeline.plan())
        return self._planned[1]

    def _assign_id(self) -> str:
        """Set and return ``id`` as Crystallize does: the sha256 of the pickled pipeline
        signature (the artifact folder of an experiment without a name)."""
        self.id = hashlib.sha256(pickle.dumps(self.pipeline.signature())).hexdigest()
        return self.id

    def _cell_spec(self) -> RunSpec:
        """The run a cell belongs to: the active one, or - for a cell run outside ``run``
        (``run_cell`` called directly) - one resolved from the experiment as it is."""
        if self._active is not None:
            return self._active
        return self.resolve(hypotheses=[], strategy="rerun").ready(self)

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    # -- planning --------------------------------------------------------------------------
    def resolve(
        self,
        *,
        treatments: Sequence[Treatment] | None = None,
        hypotheses: Sequence[Hypothesis] | None = None,
        replicates: int | None = None,
        seed: int | None = None,
        strategy: str | None = None,
    ) -> RunSpec:
        """Resolve run arguments into a RunSpec whose plan fixes every cell's seed."""
        pool = list(self._treatments if treatments is None else treatments)
        baseline_t = next((t for t in pool if t.name == BASELINE_CONDITION), None)
        active = [t for t in pool if t.name != BASELINE_CONDITION]
        names = [t.name for t in active]
        if len(set(names)) != len(names):
            raise InvalidOptionError(f"treatment names must be unique, got {names}")
        hyps = list(self._hypotheses if hypotheses is None else hypotheses)
        if replicates is None:
            ds_reps = getattr(self.datasource, "replicates", None)
            replicates = ds_reps if ds_reps else self._replicates
        reps = max(1, check_replicates(replicates))
        if hyps and not active:
            raise ValidationError("Cannot verify hypotheses without treatments")
        seed_plugin = self.get_plugin(SeedPlugin)
        auto = bool(seed_plugin.auto_seed) if seed_plugin is not None else True
        master = seed if seed is not None else (seed_plugin.seed if seed_plugin else 0)
        if seed is None and auto and isinstance(master, int) and not isinstance(master, bool):
            master %= SEED_MODULUS  # SeedPlugin takes any int: the formula is mod 2**32 anyway
        master = check_seed(master, "seed")
        loaded: dict[str, dict[str, list[Any]]] = {}
        if (strategy or self.strategy) == "resume":
            plugin = self.get_plugin(ArtifactPlugin)
            if plugin is not None:
                loaded = plugin.completed_conditions(self, [BASELINE_CONDITION, *names])
        plan = RunPlan(
            master_seed=master,
            replicates=reps,
            treatments=tuple(names),
            auto_seed=auto,
            skip=frozenset(loaded),
        )
        return RunSpec(plan, active, baseline_t, hyps, loaded)

    def provenance_meta(self) -> dict[str, Any]:
        return {
            "pipeline_signature": self.pipeline.signature(),
            "experiment": self.name,
            "fingerprint": self.fingerprint(),
            "environment": host_environment(),
        }

    # -- running ---------------------------------------------------------------------------
    @contextmanager
    def _running(self, spec: RunSpec) -> Any:
        saved = (self._treatments, self._hypotheses, self._replicates, self._active)
        defined = self._defined_treatments
        if defined is None:  # the treatments the experiment has, whatever a run picks
            self._defined_treatments = self._treatments
        self._treatments = spec.treatments
        self._hypotheses = spec.hypotheses
        self._replicates = spec.plan.replicates
        self._active = spec.ready(self)
        try:
            yield
        finally:
            self._treatments, self._hypotheses, self._replicates, self._active = saved
            self._defined_treatments = defined

    @contextmanager
    def _set_up(self) -> Any:
        """Around a run's cells: every plugin's ``before_run``, then every step's ``setup``;
        every step's ``teardown`` after them, whatever happened."""
        for plugin in self.plugins:
            plugin.before_run(self)
        for step in self.pipeline.steps:
            step.setup(self._setup_ctx)
        try:
            yield
        finally:
            for step in self.pipeline.steps:
                step.teardown(self._setup_ctx)

    def _executor(self) -> BasePlugin:
        for plugin in reversed(self.plugins):
            if overrides_loop(plugin):
                return plugin
        return SerialExecution()

    def _run_steps(
        self,
        *,
        treatments: Sequence[Treatment] | None,
        hypotheses: Sequence[Hypothesis] | None,
        replicates: int | None,
        strategy: str | None,
        seed: int | None = None,
    ) -> Drive:
        self._auto_validate()
        spec = self.resolve(
            treatments=treatments,
            hypotheses=hypotheses,
            replicates=replicates,
            seed=seed,
            strategy=strategy,
        )
        self._assign_id()
        if spec.plan.n_cells == 0:  # resume found every condition done
            return loaded_result(spec, self.pipeline.signature())
        with self._running(spec):
            with self._set_up():
                executor = self._executor()
                runner = ReplicateRunner(self, spec)
                out = executor.run_experiment_loop(self, runner)
                if inspect.isawaitable(out):
                    out = yield out
                meta = self.provenance_meta()
                run_meta = getattr(executor, "run_meta", None)
                if callable(run_meta):  # e.g. CeleryExecution adds its run id
                    meta.update(run_meta())
                if not isinstance(out, Aggregator):  # records (an executor's own loop)
                    out = aggregate_into(spec.plan, flatten_results(out))
                result = out.result(hypotheses=spec.hypotheses, meta=meta, loaded=spec.loaded)
            for plugin in self.plugins:
                plugin.after_run(self, result)
        return result

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
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "Experiment.run() cannot be called from a running event loop; "
                "use `await experiment.arun(...)` instead"
            )
        result: Result = drive_sync(
            self._run_steps(
                treatments=treatments,
                hypotheses=hypotheses,
                replicates=replicates,
                strategy=strategy,
                seed=seed,
            )
        )
        return result

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
        result: Result = await drive_async(
            self._run_steps(
                treatments=treatments,
                hypotheses=hypotheses,
                replicates=replicates,
                strategy=strategy,
                seed=seed,
            )
        )
        return result

    def apply(
        self, treatment: Treatment | str | None = None, *, data: Any = None, seed: int | None = None
    ) -> Any:
        """Run the pipeline once (one cell of replicate 0) and return its final data.

        ``data`` replaces the datasource; ``seed`` is passed to the seed function as is.
        Goes through the same cell path as ``run`` (metric tuples unpacked, async steps
        awaited); a failing step raises its own exception.
        """
        from crystallize_dist.core.inference import apply_once

        return apply_once(self, treatment, data=data, seed=seed)

    def __repr__(self) -> str:
        return (
            f"Experiment(name={self.name!r}, steps={len(self.pipeline.steps)}, "
            f"treatments={[t.name for t in self._treatments]})"
        )
