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
    """``Experiment.builder(name).datasource(ds).add_step(s).treatments([...]).build()``."""

    def __init__(self, name: str | None = None) -> None:
        self._name = name
        self._datasource: DataSource | None = None
        self._pipeline: Pipeline | None = None
        self._steps: list[PipelineStep] = []
        self._kwargs: dict[str, Any] = {}

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
        self._kwargs["plugins"] = list(plugins)
        return self

    def treatments(self, treatments: Sequence[Treatment]) -> ExperimentBuilder:
        self._kwargs["treatments"] = list(treatments)
        return self

    def hypotheses(self, hypotheses: Sequence[Hypothesis]) -> ExperimentBuilder:
        self._kwargs["hypotheses"] = list(hypotheses)
        return self

    def replicates(self, replicates: int) -> ExperimentBuilder:
        self._kwargs["replicates"] = replicates
        return self

    def description(self, description: str) -> ExperimentBuilder:
        self._kwargs["description"] = description
        return self

    def initial_ctx(self, initial_ctx: Mapping[str, Any]) -> ExperimentBuilder:
        self._kwargs["initial_ctx"] = dict(initial_ctx)
        return self

    def outputs(self, outputs: Sequence[Artifact]) -> ExperimentBuilder:
        self._kwargs["outputs"] = list(outputs)
        return self

    def build(self) -> Experiment:
        from crystallize_dist.model.experiment import Experiment

        if self._datasource is None:
            raise ValidationError("datasource must be provided")
        pipeline = self._pipeline or Pipeline(self._steps)
        return Experiment(self._datasource, pipeline, name=self._name, **self._kwargs)
