"""Artifact: a file a step writes, and the data source a later experiment reads it from."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystallize_dist.constants import (
    BASELINE_CONDITION,
    CONDITION_KEY,
    METADATA_FILENAME,
    REPLICATE_KEY,
)
from crystallize_dist.errors import ArtifactError, MissingArtifactError
from crystallize_dist.model.artifact_files import MANIFEST_FILE, versions
from crystallize_dist.model.artifacts import ArtifactPlugin
from crystallize_dist.model.datasource import DataSource
from crystallize_dist.model.portable import PortableCallable

if TYPE_CHECKING:
    from crystallize_dist.model.context import FrozenContext


def default_loader(path: Path) -> Any:
    """An artifact's bytes (the loader of an Artifact given none)."""
    return path.read_bytes()


def default_writer(data: Any) -> bytes:
    """Bytes as they are, str as UTF-8 (the writer of an Artifact given none)."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    raise TypeError(f"default_writer takes bytes or str, got {type(data).__name__}")


class Artifact(DataSource):
    """An output a step writes (``artifact.write(data)``) and a later experiment reads.

    ``loader(path)`` reads a stored file back (default: its bytes) and ``writer(data)``
    turns data into bytes (default: bytes or str); both pickle even when they are lambdas
    (see ``model/portable.py``).
    """

    def __init__(
        self,
        name: str,
        loader: Callable[[Path], Any] | None = None,
        writer: Callable[[Any], bytes] | None = None,
    ) -> None:
        self.name = name
        self.loader = PortableCallable(loader or default_loader)
        self.writer = PortableCallable(writer or default_writer)
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
            raise ArtifactError(
                f"Artifact '{self.name}' is not bound to a context: take it as a parameter "
                "of a @pipeline_step function, which binds it to each cell"
            )
        self._ctx.artifacts.add(self.name, self.writer(data))

    def version_dir(self) -> Path:
        """The producer's version folder this artifact is read from: the newest when its
        ArtifactPlugin is versioned, else ``v0``."""
        producer = self._producer
        if producer is None:
            raise ArtifactError(
                f"Artifact '{self.name}' is not attached to an experiment: list it in the "
                "producing experiment's outputs"
            )
        plugin = producer.get_plugin(ArtifactPlugin)
        if plugin is None:
            raise ArtifactError(f"Artifact '{self.name}': its producer has no ArtifactPlugin")
        folder: str = producer.name or producer.id or producer.assign_id()
        exp_dir = Path(plugin.root_dir) / folder
        found = versions(exp_dir) if plugin.versioned else []
        return exp_dir / f"v{found[-1] if found else 0}"

    def fetch(self, ctx: FrozenContext) -> Any:
        """The file the producer's step wrote for this cell's replicate (modulo the
        producer's replicate count) and condition, loaded; a condition the producer did
        not run falls back to its baseline, with a warning on the context's logger."""
        vdir = self.version_dir()
        manifest_path = vdir / MANIFEST_FILE
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        step = manifest.get(self.name)
        if step is None:
            raise MissingArtifactError(f"Manifest {manifest_path} has no entry for {self.name}")
        if self.replicates is None:
            meta_path = vdir / METADATA_FILENAME
            if meta_path.is_file():
                self.replicates = json.loads(meta_path.read_text()).get("replicates")
        rep = int(ctx.get(REPLICATE_KEY, 0))
        if self.replicates:
            rep %= int(self.replicates)
        cond = ctx.get(CONDITION_KEY, BASELINE_CONDITION)
        path = vdir / f"replicate_{rep}" / cond / step / self.name
        if not path.exists() and cond != BASELINE_CONDITION:
            ctx.logger.warning(
                "Artifact %s for condition '%s' not found at %s; falling back to '%s'.",
                self.name,
                cond,
                path,
                BASELINE_CONDITION,
            )
            path = vdir / f"replicate_{rep}" / BASELINE_CONDITION / step / self.name
        if not path.exists():
            raise MissingArtifactError(f"Artifact {path} not found")
        return self.loader(path)

    @property
    def params(self) -> dict[str, Any]:
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"Artifact(name={self.name!r})"
