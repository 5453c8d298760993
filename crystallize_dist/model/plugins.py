"""Plugins: the no-op BasePlugin, SeedPlugin and LoggingPlugin (ArtifactPlugin: artifacts.py).

Hooks run in plugin-list order: ``init_hook`` (construction), ``before_run``,
``before_replicate`` (once per cell), ``before_step`` / ``after_step``, ``after_run``.
An executor plugin overrides ``run_experiment_loop``; the last such plugin wins.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

from crystallize_dist.constants import REPLICATE_KEY, SEED_USED_KEY
from crystallize_dist.model.seeding import default_seed_function, derive_seed, draw_master_seed

if TYPE_CHECKING:
    from crystallize_dist.model.context import FrozenContext
    from crystallize_dist.model.hypothesis import Hypothesis
    from crystallize_dist.model.result import Result
    from crystallize_dist.model.step import PipelineStep
    from crystallize_dist.model.treatment import Treatment

_log = logging.getLogger("crystallize")
_P = TypeVar("_P")


class ExperimentLike(Protocol):
    """What a plugin hook is handed: the ``Experiment`` being run. During a run its
    ``treatments``, ``hypotheses``, ``replicates`` and ``master_seed`` are the run's."""

    name: str | None
    id: str | None
    plugins: list[BasePlugin]

    @property
    def replicates(self) -> int: ...

    @property
    def treatments(self) -> list[Treatment]: ...

    @property
    def hypotheses(self) -> list[Hypothesis]: ...

    @property
    def master_seed(self) -> int | None: ...

    def get_plugin(self, cls: type[_P]) -> _P | None: ...

    def assign_id(self) -> str: ...


class BasePlugin:
    """A plugin whose every hook does nothing; subclass and override what you need."""

    def init_hook(self, experiment: ExperimentLike) -> None:
        """Called once when the experiment is constructed."""

    def before_run(self, experiment: ExperimentLike) -> None:
        """Called before any cell runs."""

    def before_replicate(self, experiment: ExperimentLike, ctx: FrozenContext) -> None:
        """Called once per cell (condition x replicate), after the treatment is applied."""

    def before_step(self, experiment: ExperimentLike, step: PipelineStep) -> None:
        """Called before each step of each cell."""

    def after_step(
        self, experiment: ExperimentLike, step: PipelineStep, data: Any, ctx: FrozenContext
    ) -> None:
        """Called after each step of each cell with its output."""

    def after_run(self, experiment: ExperimentLike, result: Result) -> None:
        """Called with the aggregated result."""

    def run_experiment_loop(
        self, experiment: ExperimentLike, replicate_fn: Callable[[int], Any]
    ) -> Any:
        """Executors override this: call ``replicate_fn(r)`` for every replicate, in order."""
        return NotImplemented


def _hooked(plugins: Iterable[BasePlugin], hook: str) -> tuple[BasePlugin, ...]:
    base = getattr(BasePlugin, hook)
    return tuple(
        p
        for p in plugins
        if (getattr(type(p), hook, base) is not base or hook in getattr(p, "__dict__", ()))
        and hook not in _idle(p)
    )


def _idle(plugin: BasePlugin) -> frozenset[str]:
    """Hooks a plugin says do nothing for this run (``idle_hooks``, set up by then)."""
    idle = getattr(plugin, "idle_hooks", None)
    found = idle() if callable(idle) else frozenset()
    return frozenset(found)


class StepHooks(NamedTuple):
    """The plugins whose per-cell hooks do something, in list order. BasePlugin's own hooks
    do nothing, so the cell path calls only these (a hook set on an instance counts too)."""

    before_replicate: tuple[BasePlugin, ...]
    before_step: tuple[BasePlugin, ...]
    after_step: tuple[BasePlugin, ...]

    @classmethod
    def of(cls, plugins: Iterable[BasePlugin]) -> StepHooks:
        plugins = list(plugins)
        return cls(*(_hooked(plugins, hook) for hook in cls._fields))


#: No plugin hooks at all (steps run outside an experiment).
NO_HOOKS = StepHooks((), (), ())


def overrides_loop(plugin: BasePlugin) -> bool:
    """True when ``plugin`` is an executor (overrides ``run_experiment_loop``)."""
    return getattr(type(plugin), "run_experiment_loop", None) is not BasePlugin.run_experiment_loop


@dataclass
class SeedPlugin(BasePlugin):
    """Seeds every cell with the seed the run's plan gave it (see ``model/seeding.py``; the
    master seed itself when ``auto_seed`` is False). A master seed left as None is drawn at
    construction and kept."""

    seed: int | None = None
    auto_seed: bool = True
    seed_fn: Callable[[int], Any] | None = None

    def init_hook(self, experiment: ExperimentLike) -> None:
        if self.seed is None:
            self.seed = draw_master_seed()

    def before_replicate(self, experiment: ExperimentLike, ctx: FrozenContext) -> None:
        seed = ctx.cell_seed
        if seed is None:  # a context built outside the cell path: derive as upstream does
            master = self.seed if self.seed is not None else 0
            seed = derive_seed(master, int(ctx.get(REPLICATE_KEY, 0)), self.auto_seed)
        ctx.add(SEED_USED_KEY, seed)
        (self.seed_fn or default_seed_function)(seed)


def unseeded_warning(experiment: ExperimentLike, condition: str, drew: list[str]) -> str | None:
    """Crystallize's "No seed_fn provided" warning, said only when a cell of the first
    replicate (of ``condition``) drew from the global generators ``drew`` and the
    experiment's SeedPlugin has no ``seed_fn``; None otherwise. A cell that draws only from
    ``ctx.rng`` / ``ctx.random`` (seeded per cell) needs no seed function."""
    plugin = experiment.get_plugin(SeedPlugin)
    if plugin is None or not plugin.auto_seed or plugin.seed_fn is not None or not drew:
        return None
    return (
        "No seed_fn provided—randomness may not be reproducible: the datasource or a step of "
        f"'{condition}' drew from the global {' and '.join(drew)} generator"
        f"{'s' if len(drew) > 1 else ''}; pass SeedPlugin(seed_fn=...) or draw from ctx.rng "
        "/ ctx.random"
    )


@dataclass
class LoggingPlugin(BasePlugin):
    """Logs run start / end (and every step when ``verbose``) on the ``crystallize`` logger."""

    verbose: bool = False
    log_level: str = "INFO"
    _started: float = field(default=0.0, init=False, repr=False, compare=False)

    def before_run(self, experiment: ExperimentLike) -> None:
        level = logging.getLevelName(self.log_level.upper())
        _log.setLevel(level if isinstance(level, int) else logging.INFO)
        if not _log.handlers:
            _log.addHandler(logging.StreamHandler())
        _log.info(
            "Experiment: %d replicates, %d treatments, %d hypotheses (seed=%s)",
            experiment.replicates,
            len(experiment.treatments),
            len(experiment.hypotheses),
            experiment.master_seed,
        )
        self._started = time.perf_counter()

    def idle_hooks(self) -> frozenset[str]:
        """Without ``verbose`` the per-step log is off: the cell path need not call it."""
        quiet = not self.verbose and type(self).after_step is LoggingPlugin.after_step
        return frozenset({"after_step"}) if quiet else frozenset()

    def after_step(
        self, experiment: ExperimentLike, step: PipelineStep, data: Any, ctx: FrozenContext
    ) -> None:
        if self.verbose:
            _log.info(
                "Rep %s/%s %s finished step %s",
                ctx.get("replicate"),
                experiment.replicates,
                ctx.get("condition"),
                type(step).__name__,
            )

    def after_run(self, experiment: ExperimentLike, result: Result) -> None:
        elapsed = time.perf_counter() - self._started
        best = ""
        for hyp in result.metrics.hypotheses:
            winner = hyp.ranking.get("best") if isinstance(hyp.ranking, dict) else None
            if winner is not None:
                best += f"; Best {hyp.name}: '{winner}'"
        _log.info("Completed in %.1fs%s; %d errors", elapsed, best, len(result.errors))
