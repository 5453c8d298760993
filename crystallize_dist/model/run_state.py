"""What a run changes on an experiment while it goes on: its treatments, hypotheses,
replicates and master seed (plugins see the run's values, as in Crystallize), restored
afterwards. ``Experiment`` takes these from ``RunState``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from crystallize_dist.model.options import check_replicates
from crystallize_dist.model.plugins import BasePlugin, SeedPlugin
from crystallize_dist.model.treatment import check_treatments

if TYPE_CHECKING:
    from crystallize_dist.model.hypothesis import Hypothesis
    from crystallize_dist.model.treatment import Treatment

_P = TypeVar("_P")


class RunState:
    """The run-dependent attributes of an experiment (see module doc)."""

    plugins: list[BasePlugin]
    _treatments: list[Treatment]
    _hypotheses: list[Hypothesis]
    _replicates: Any
    #: while a run is going on: its master seed, and the treatments defined before it
    _run_seed: int | None = None
    _defined: list[Treatment] | None = None

    @property
    def treatments(self) -> list[Treatment]:
        return self._treatments

    @treatments.setter
    def treatments(self, value: Iterable[Treatment]) -> None:
        self._treatments = check_treatments(value)

    @property
    def hypotheses(self) -> list[Hypothesis]:
        return self._hypotheses

    @hypotheses.setter
    def hypotheses(self, value: Iterable[Hypothesis]) -> None:
        self._hypotheses = list(value)

    @property
    def replicates(self) -> int:
        replicates: int = self._replicates
        return replicates

    @replicates.setter
    def replicates(self, value: int) -> None:
        self._replicates = check_replicates(value)

    @property
    def defined_treatments(self) -> list[Treatment]:
        """The experiment's own treatments, also while a run of only some of them is going
        on (``treatments`` then holds the run's)."""
        return self._defined if self._defined is not None else self._treatments

    @property
    def master_seed(self) -> int | None:
        """The master seed of the run going on (``run(seed=...)`` or the SeedPlugin's);
        outside a run, the SeedPlugin's seed."""
        if self._run_seed is not None:
            return self._run_seed
        plugin = self.get_plugin(SeedPlugin)
        return plugin.seed if plugin is not None else None

    def get_plugin(self, cls: type[_P]) -> _P | None:
        """The first plugin that is an instance of ``cls``, or None."""
        return next((p for p in self.plugins if isinstance(p, cls)), None)

    @contextmanager
    def running(
        self,
        *,
        treatments: Sequence[Treatment],
        hypotheses: Sequence[Hypothesis],
        replicates: int,
        seed: int | None = None,
    ) -> Iterator[None]:
        """Within the block ``treatments``, ``hypotheses``, ``replicates`` and
        ``master_seed`` are a run's; they are restored after it. ``defined_treatments``
        stays the experiment's own."""
        saved = (self._treatments, self._hypotheses, self._replicates, self._run_seed)
        defined = self._defined
        if defined is None:
            self._defined = self._treatments
        self._treatments = list(treatments)
        self._hypotheses = list(hypotheses)
        self._replicates = replicates
        self._run_seed = seed
        try:
            yield
        finally:
            self._treatments, self._hypotheses, self._replicates, self._run_seed = saved
            self._defined = defined
