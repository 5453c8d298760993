"""ExperimentInput: several named data sources fetched together."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crystallize_dist.errors import ValidationError
from crystallize_dist.model.artifact import Artifact
from crystallize_dist.model.datasource import DataSource

if TYPE_CHECKING:
    from crystallize_dist.model.context import FrozenContext


class ExperimentInput(DataSource):
    """Several named data sources fetched together into ``{alias: data}``; its replicate
    count is the one its Artifact inputs agree on."""

    def __init__(self, **inputs: DataSource) -> None:
        if not inputs:
            raise ValidationError("ExperimentInput needs at least one data source")
        self._inputs = dict(inputs)
        #: the Artifact inputs: outputs of other experiments this one reads
        self.required_outputs = [src for src in inputs.values() if isinstance(src, Artifact)]
        counts = {
            name: src.replicates
            for name, src in inputs.items()
            if isinstance(src, Artifact) and src.replicates is not None
        }
        if len(set(counts.values())) > 1:
            mismatches = ", ".join(f"{n}={r}" for n, r in sorted(counts.items()))
            raise ValidationError(f"Conflicting replicates across artifacts: {mismatches}")
        self._replicates = next(iter(counts.values()), None)

    @property
    def replicates(self) -> int | None:
        return self._replicates

    @property
    def inputs(self) -> dict[str, DataSource]:
        return dict(self._inputs)

    def fetch(self, ctx: FrozenContext) -> dict[str, Any]:
        return {alias: src.fetch(ctx) for alias, src in self._inputs.items()}

    @property
    def params(self) -> dict[str, Any]:
        return {alias: type(src).__name__ for alias, src in self._inputs.items()}


MultiArtifactDataSource = ExperimentInput
