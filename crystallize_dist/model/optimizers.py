"""Optimizers: ``Experiment.optimize`` asks an optimizer for treatments, runs them, and tells
it how they scored (Crystallize's ``BaseOptimizer`` / ``Objective`` interface)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crystallize_dist.errors import MissingMetricError, ValidationError

if TYPE_CHECKING:
    from crystallize_dist.model.result import Result
    from crystallize_dist.model.treatment import Treatment


@dataclass
class Objective:
    """What a trial is scored on: a metric and the direction (``"minimize"`` or
    ``"maximize"``) the optimizer should push it."""

    metric: str | list[str]
    direction: str | list[str]


class BaseOptimizer(ABC):
    """An optimization strategy: ``ask`` for the treatments of the next trial, ``tell`` it
    the trial's objective values, and ``get_best_treatment`` at the end."""

    def __init__(self, objective: Objective) -> None:
        self.objective = objective

    @abstractmethod
    def ask(self) -> list[Treatment]:
        """The treatment(s) the next trial runs."""

    @abstractmethod
    def tell(self, objective_values: dict[str, float]) -> None:
        """The last trial's objective value(s), keyed by metric name."""

    @abstractmethod
    def get_best_treatment(self) -> Treatment:
        """The best treatment found over all trials."""


def trial_values(result: Result, objective: Objective) -> dict[str, float]:
    """A trial's score: the mean of the objective's metric(s) over the first treatment's
    values (what ``Experiment.optimize`` tells the optimizer)."""
    if not result.metrics.treatments:
        failed = "; ".join(f"{k}: {e}" for k, e in list(result.errors.items())[:3])
        raise ValidationError(
            "an optimization trial produced no treatment metrics"
            + (f" (errors: {failed})" if failed else "")
        )
    name = next(iter(result.metrics.treatments))
    metrics = result.metrics.treatments[name].metrics
    names = [objective.metric] if isinstance(objective.metric, str) else list(objective.metric)
    out: dict[str, float] = {}
    for metric in names:
        values: list[Any] = metrics.get(metric, [])
        if not values:
            raise MissingMetricError(metric)
        out[metric] = sum(values) / len(values)
    return out
