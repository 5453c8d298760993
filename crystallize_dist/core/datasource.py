"""Data sources: the ABC, multi-input sources, artifacts as inputs, and the registry."""

from __future__ import annotations

import copy
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystallize_dist.constants import BASELINE_CONDITION, CONDITION_KEY, REPLICATE_KEY
from crystallize_dist.errors import ValidationError

if TYPE_CHECKING:
    from crystallize_dist.core.context import FrozenContext

_log = logging.getLogger("crystallize")


class DataSource(ABC):
    """Produces a condition's input data; ``fetch`` is called once per cell."""

    @abstractmethod
    def fetch(self, ctx: FrozenContext) -> Any:
        """Return the data the pipeline starts from."""

    @property
    def params(self) -> dict[str, Any]:
        return dict(getattr(self, "_params", {}) or {})


class ExperimentInput(DataSource):
    """Several named data sources fetched together into ``{alias: data}``."""

    def __init__(self, **inputs: DataSource) -> None:
        if not inputs:
            raise ValidationError("ExperimentInput needs at least one data source")
        self._inputs = dict(inputs)
        counts = {
            name: src.replicates
            for name, src in inputs.items()
            if isinstance(src, Artifact) and src.replicates is not None
        }
        if len(set(counts.values())) > 1:
            raise ValidationError(f"ExperimentInput artifacts disagree on replicates: {counts}")
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


def _default_writer(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    raise TypeError(f"Artifact default writer takes bytes or str, got {type(data).__name__}")


class Artifact(DataSource):
    """An output a step writes (``artifact.write(data)``) and a later experiment reads."""

    def __init__(
        self,
        name: str,
        loader: Callable[[Path], Any] | None = None,
        writer: Callable[[Any], bytes] | None = None,
    ) -> None:
        self.name = name
        self.loader = loader
        self.writer = writer
        self._ctx: FrozenContext | None = None
        self._producer: Any = None
        self.replicates: int | None = None

    def _clone_with_context(self, ctx: FrozenContext) -> Artifact:
        clone = copy.copy(self)
        clone._ctx = ctx
        return clone

    def write(self, data: Any) -> None:
        """Serialise ``data`` with the writer and log it on the bound context."""
        if self._ctx is None:
            raise ValidationError(f"Artifact '{self.name}' is not bound to a context")
        payload = (self.writer or _default_writer)(data)
        self._ctx.artifacts.add(self.name, payload)

    def _version_dir(self) -> Path:
        from crystallize_dist.core.artifacts import ArtifactPlugin

        producer = self._producer
        if producer is None:
            raise ValidationError(f"Artifact '{self.name}' has no producing experiment")
        plugin = producer.get_plugin(ArtifactPlugin)
        if plugin is None:
            raise ValidationError(f"Artifact '{self.name}': producer has no ArtifactPlugin")
        exp_dir = Path(plugin.root_dir) / (producer.name or producer.id or "")
        versions = sorted(int(p.name[1:]) for p in exp_dir.glob("v*") if p.name[1:].isdigit())
        if not versions:
            raise ValidationError(f"Artifact '{self.name}': no runs found under {exp_dir}")
        return exp_dir / f"v{versions[-1]}"

    def fetch(self, ctx: FrozenContext) -> Any:
        vdir = self._version_dir()
        manifest = json.loads((vdir / "_manifest.json").read_text())
        step = manifest.get(self.name)
        if step is None:
            raise ValidationError(f"Artifact '{self.name}' is not in {vdir / '_manifest.json'}")
        meta_path = vdir / "metadata.json"
        reps = json.loads(meta_path.read_text()).get("replicates", 1) if meta_path.exists() else 1
        rep = int(ctx.get(REPLICATE_KEY, 0)) % max(1, int(reps))
        cond = ctx.get(CONDITION_KEY, BASELINE_CONDITION)
        path = vdir / f"replicate_{rep}" / cond / step / self.name
        if not path.exists():
            _log.warning(
                "Artifact '%s' missing for condition '%s'; using baseline", self.name, cond
            )
            path = vdir / f"replicate_{rep}" / BASELINE_CONDITION / step / self.name
        return self.loader(path) if self.loader else path.read_bytes()

    @property
    def params(self) -> dict[str, Any]:
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"Artifact(name={self.name!r})"


# --- registry -------------------------------------------------------------------------------
_REGISTRY: dict[str, DataSource] = {}


def register_datasource(name: str, datasource: DataSource) -> None:
    """Register ``datasource`` under ``name``; a duplicate name raises ValueError."""
    if name in _REGISTRY:
        raise ValidationError(f"datasource '{name}' is already registered")
    _REGISTRY[name] = datasource


def unregister_datasource(name: str) -> None:
    _REGISTRY.pop(name, None)


def get_datasource(name: str) -> DataSource:
    """The registered source ``name``; an unknown name raises KeyError listing the names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"datasource '{name}' is not registered; available: {sorted(_REGISTRY)}"
        ) from None


def list_datasources() -> list[str]:
    return sorted(_REGISTRY)
