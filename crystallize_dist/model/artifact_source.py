"""``Experiment.artifact_datasource``: a data source giving the paths of files an earlier
run of an experiment wrote through its ArtifactPlugin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystallize_dist.constants import BASELINE_CONDITION, METADATA_FILENAME, REPLICATE_KEY
from crystallize_dist.errors import ArtifactError, MissingArtifactError
from crystallize_dist.model.artifact import Artifact
from crystallize_dist.model.artifact_files import versions
from crystallize_dist.model.artifacts import ArtifactPlugin
from crystallize_dist.model.datasource import DataSource

if TYPE_CHECKING:
    from crystallize_dist.model.context import FrozenContext
    from crystallize_dist.model.plugins import ExperimentLike


class ArtifactDataSource(DataSource):
    """Gives, for a cell of replicate r, the Path
    ``<version folder>/replicate_<r>/<condition>/<step>/<name>`` (which must exist).
    ``replicates`` is the producer's count, so a reading experiment runs as many."""

    def __init__(
        self, base: Path, step: str, name: str, condition: str, replicates: int | None
    ) -> None:
        self.base = base
        self.step = step
        self.name = name
        self.condition = condition
        self.replicates = replicates
        #: the artifact the reading experiment needs (graphs check it exists on resume)
        self.required_outputs = [Artifact(name)]

    def fetch(self, ctx: FrozenContext) -> Path:
        rep = ctx.get(REPLICATE_KEY, 0)
        path = self.base / f"replicate_{rep}" / self.condition / self.step / self.name
        if not path.exists():
            raise MissingArtifactError(
                f"Artifact {path} missing for rep {rep}: run the producing experiment with "
                "an ArtifactPlugin and the same replicates, step and file name first"
            )
        return path

    @property
    def params(self) -> dict[str, Any]:
        return {"step": self.step, "name": self.name, "condition": self.condition}

    def __repr__(self) -> str:
        return f"ArtifactDataSource({self.base / self.condition / self.step / self.name})"


def artifact_datasource(
    experiment: ExperimentLike,
    step: str,
    name: str = "data.json",
    condition: str = BASELINE_CONDITION,
    *,
    require_metadata: bool = False,
) -> ArtifactDataSource:
    """The files ``step`` wrote as ``name`` in ``experiment``'s run: the version its
    ArtifactPlugin used last (the newest on disk before it ran). Its replicate count comes
    from that run's metadata.json, else from the experiment; ``require_metadata`` makes a
    missing metadata.json an error."""
    plugin = experiment.get_plugin(ArtifactPlugin)
    if plugin is None:
        raise ArtifactError("artifact_datasource needs the experiment to have an ArtifactPlugin")
    folder = Path(plugin.root_dir) / (experiment.name or experiment.id or experiment.assign_id())
    if plugin.experiment_id:  # it ran in this process: the version it wrote
        version = plugin.version
    else:
        found = versions(folder)
        version = found[-1] if found else 0
    base = folder / f"v{version}"
    meta_path = base / METADATA_FILENAME
    replicates: int | None = experiment.replicates
    if meta_path.is_file():
        replicates = json.loads(meta_path.read_text()).get("replicates", replicates)
    elif require_metadata:
        raise MissingArtifactError(
            f"Metadata missing: {meta_path}. Did the experiment run with an ArtifactPlugin?"
        )
    return ArtifactDataSource(base, step, name, condition, replicates)
