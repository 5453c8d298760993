"""ExperimentBuilder: the chainable way to assemble an Experiment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from crystallize_dist.errors import ValidationError
from crystallize_dist.model.pipeline import Pipeline

if TYPE_CHECKING:
    from crystallize_dist.model.artifact import Artifact
    from crystallize_dist.model.datasource import DataSource
    from crystallize_dist.model.experiment import Experiment
    from crystallize_dist.model.hypothesis import Hypothesis
    from crystallize_dist.model.plugins import BasePlugin
    from crystallize_dist.model.step import PipelineStep
    from crystallize_dist.model.treatment import Treatment


class ExperimentBuilder:
    """``Experiment.builder(name).datasource(ds).add_step(s).treatments([...]).build()``.

    Each method sets one argument of the Experiment and returns the builder; an explicit
    ``pipeline`` wins over the steps given with ``add_step``.
    """

    def __init__(self, name: str | None = None) -> None:
        self._name = name
        self._datasource: DataSource | None = None
        self._steps: list[PipelineStep] = []
        self._pipeline: Pipeline | None = None
        self._plugins: list[BasePlugin] = []
        self._treatments: list[Treatment] = []
        self._hypotheses: list[Hypothesis] = []
        self._replicates: int = 1
        self._description: str | None = None
        self._initial_ctx: dict[str, Any] = {}
        self._outputs: list[Artifact] = []

    def datasource(self, datasource: DataSource) -> ExperimentBuilder:
        self._datasource = datasource
        return self

    def pipeline(self, pipeline: Pipeline) -> ExperimentBuilder:
        self._pipeline = pipeline
        return self

    def add_step(self, step: PipelineStep) -> ExperimentBuilder:
        self._steps.append(step)
        return self

    def plugins(self, plugins: Sequence[BasePlugin]) -> ExperimentBuilder:
        self._plugins = list(plugins)
        return self

    def treatments(self, treatments: Sequence[Treatment]) -> ExperimentBuilder:
        self._treatments = list(treatments)
        return self

    def hypotheses(self, hypotheses: Sequence[Hypothesis]) -> ExperimentBuilder:
        self._hypotheses = list(hypotheses)
        return self

    def replicates(self, replicates: int) -> ExperimentBuilder:
        self._replicates = replicates
        return self

    def description(self, description: str) -> ExperimentBuilder:
        self._description = description
        return self

    def initial_ctx(self, initial_ctx: Mapping[str, Any]) -> ExperimentBuilder:
        self._initial_ctx = dict(initial_ctx)
        return self

    def outputs(self, outputs: Sequence[Artifact]) -> ExperimentBuilder:
        self._outputs = list(outputs)
        return self

    def build(self) -> Experiment:
        from crystallize_dist.model.experiment import Experiment

        if self._datasource is None:
            raise ValidationError("datasource must be provided")
        return Experiment(
            self._datasource,
            self._pipeline or Pipeline(self._steps),
            list(self._plugins),
            name=self._name,
            description=self._description,
            initial_ctx=self._initial_ctx or None,
            outputs=self._outputs,
            treatments=self._treatments,
            hypotheses=self._hypotheses,
            replicates=self._replicates,
        )
