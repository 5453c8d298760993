"""Artifact: a file a step writes, and the data source a later experiment reads it from."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystallize_dist.constants import BASELINE_CONDITION, CONDITION_KEY, REPLICATE_KEY
from crystallize_dist.errors import ValidationError
from crystallize_dist.model.artifact_files import versions
from crystallize_dist.model.artifacts import ArtifactPlugin
from crystallize_dist.model.datasource import DataSource

if TYPE_CHECKING:
    from crystallize_dist.model.context import FrozenContext

_log = logging.getLogger("crystallize")


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
        #: the experiment that lists this artifact in its ``outputs``
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
        producer = self._producer
        if producer is None:
            raise ValidationError(f"Artifact '{self.name}' has no producing experiment")
        plugin = producer.get_plugin(ArtifactPlugin)
        if plugin is None:
            raise ValidationError(f"Artifact '{self.name}': producer has no ArtifactPlugin")
        exp_dir = Path(plugin.root_dir) / (producer.name or producer.id or "")
        found = versions(exp_dir)
        if not found:
            raise ValidationError(f"Artifact '{self.name}': no runs found under {exp_dir}")
        return exp_dir / f"v{found[-1]}"

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
