"""``ExperimentGraph.from_yaml``: the experiments of config folders that read each other's
outputs, each folder loaded once; and ``find_experiments_root``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from crystallize_dist.errors import MissingConfigError
from crystallize_dist.model.config_folder import CONFIG_FILE, FolderLoader

if TYPE_CHECKING:
    from crystallize_dist.model.experiment import Experiment

_log = logging.getLogger(__name__)


def find_experiments_root(start: Path, *, strict: bool = True) -> Path:
    """The nearest folder at or above ``start`` that is named ``experiments`` or holds an
    ``experiments`` folder (then that one). When there is none: FileNotFoundError, or with
    ``strict=False`` a warning and ``start`` itself."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if folder.name == "experiments":
            return folder
        if (folder / "experiments").is_dir():
            return folder / "experiments"
    if strict:
        raise FileNotFoundError(f"Could not locate 'experiments' directory from {start}")
    _log.warning("Could not locate 'experiments' dir from %s; falling back to start", start)
    return start


def experiments_from_yaml(config: str | Path) -> list[Experiment]:
    """The experiment of ``config`` (a config.yaml or its folder) and every experiment its
    datasource refers to, producers first; or, for a folder without a config.yaml, the
    experiments of all its sub-folders that have one."""
    from crystallize_dist.model.experiment import Experiment

    path = Path(config)
    load = FolderLoader(Experiment)
    if path.is_dir() and not (path / CONFIG_FILE).exists():
        folders = sorted(p for p in path.iterdir() if (p / CONFIG_FILE).is_file())
        if not folders:
            raise MissingConfigError(f"{path}: no sub-folder holds a {CONFIG_FILE}")
        for folder in folders:
            load(folder)
    else:
        load(path)
    return list(load.loaded.values())
