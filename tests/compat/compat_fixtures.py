"""Module-level steps and sources for the compatibility tests (process-pool workers import
them by name)."""

from __future__ import annotations

from typing import Any

from crystallize_dist import Artifact, DataSource, FrozenContext, PipelineStep, pipeline_step


class ReplicateSource(DataSource):
    """The replicate index (plus ``increment`` when a treatment sets it)."""

    def fetch(self, ctx: FrozenContext) -> int:
        return int(ctx["replicate"]) + int(ctx.get("increment", 0))


class Record(PipelineStep):
    """Records its input as metric ``val`` and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        self.calls += 1
        ctx.metrics.add("val", data)
        return data

    @property
    def params(self) -> dict[str, Any]:
        return {}


class WriteFile(PipelineStep):
    """Writes its input as the file ``name`` (through the context's artifact log)."""

    def __init__(self, name: str = "out.txt") -> None:
        self.name = name
        self.calls = 0

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        self.calls += 1
        ctx.artifacts.add(self.name, str(data).encode())
        ctx.metrics.add("val", data)
        return data

    @property
    def params(self) -> dict[str, Any]:
        return {"name": self.name}


class ReadNumber(PipelineStep):
    """Reads a number from an artifact's loaded text (or a Path) and records it."""

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        text = data.read_text() if hasattr(data, "read_text") else data
        ctx.metrics.add("read", int(text))
        return data

    @property
    def params(self) -> dict[str, Any]:
        return {}


@pipeline_step()
def write_number(data: int, ctx: FrozenContext, out: Artifact) -> int:
    out.write(str(data))
    ctx.metrics.add("val", data)
    return data
