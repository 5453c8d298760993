"""Pipeline: an ordered list of steps, run by ``model/step_loop.py``."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from crystallize_dist.errors import ValidationError
from crystallize_dist.model.step_loop import PlannedStep, arun_steps, run_steps

if TYPE_CHECKING:
    from crystallize_dist.model.context import FrozenContext
    from crystallize_dist.model.plugins import ExperimentLike
    from crystallize_dist.model.step import PipelineStep


class Pipeline:
    """An ordered list of steps."""

    def __init__(self, steps: Iterable[PipelineStep]) -> None:
        self.steps: list[PipelineStep] = list(steps)
        if not self.steps:
            raise ValidationError("Pipeline must contain at least one step.")
        self._provenance: list[dict[str, Any]] = []
        self._planned: tuple[tuple[Any, ...], list[PlannedStep]] | None = None

    def signature(self) -> str:
        """``ClassName + repr(params)`` of every step, joined with ``|``."""
        return "|".join(type(s).__name__ + repr(s.params) for s in self.steps)

    def get_provenance(self) -> list[dict[str, Any]]:
        """The step records of the last pass over the steps (in a run: the last cell that
        ran in this process)."""
        return list(self._provenance)

    def keep_provenance(self, records: list[dict[str, Any]]) -> None:
        """Note ``records`` as the last pass's (the cell path calls it after each cell)."""
        self._provenance = records

    def plan(self) -> list[PlannedStep]:
        """What running the steps needs from each of them: the step, its class name, params,
        ``step_hash`` and whether it caches. Kept while the steps and their params stay the
        same (hashing reads source, too slow to repeat per cell; a stale hash would hit the
        wrong cache entry once a step or its params change)."""
        steps = self.steps
        key = tuple((id(s), type(s).__qualname__, repr(s.params), s.cacheable) for s in steps)
        if self._planned is None or self._planned[0] != key:
            planned = [
                (s, type(s).__name__, s.params, s.step_hash, bool(s.cacheable)) for s in steps
            ]
            self._planned = (key, planned)
        return self._planned[1]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_planned"] = None  # holds the steps by id(): worked out again where unpickled
        return state

    def run(
        self,
        data: Any,
        ctx: FrozenContext,
        *,
        verbose: bool = False,
        progress: bool = False,
        rep: int | None = None,
        condition: str | None = None,
        logger: logging.Logger | None = None,
        return_provenance: bool = False,
        experiment: ExperimentLike | None = None,
    ) -> Any:
        """Run every step on ``data``; returns the final data (and provenance if asked)."""
        out, self._provenance = run_steps(
            data, ctx, self.plan(), verbose=verbose, experiment=experiment
        )
        return (out, self.get_provenance()) if return_provenance else out

    async def arun(
        self,
        data: Any,
        ctx: FrozenContext,
        *,
        verbose: bool = False,
        progress: bool = False,
        rep: int | None = None,
        condition: str | None = None,
        logger: logging.Logger | None = None,
        return_provenance: bool = False,
        experiment: ExperimentLike | None = None,
    ) -> Any:
        """Async twin of :meth:`run`: awaits async steps on the running loop."""
        out, self._provenance = await arun_steps(
            data, ctx, self.plan(), verbose=verbose, experiment=experiment
        )
        return (out, self.get_provenance()) if return_provenance else out
