"""``Experiment.from_yaml``: build an experiment from a folder holding ``config.yaml``.

The folder may hold ``datasources.py``, ``steps.py``, ``outputs.py`` and ``verifiers.py`` or
``hypotheses.py`` (see ``config_sections.py``). Every mistake is a ConfigError that names
the file and the key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from crystallize_dist.errors import ConfigError, MissingConfigError, ValidationError
from crystallize_dist.model.config_sections import (
    Folder,
    read_datasource,
    read_hypotheses,
    read_outputs,
    read_steps,
    read_treatments,
)

CONFIG_FILE = "config.yaml"
KNOWN_KEYS = {
    "name",
    "description",
    "replicates",
    "datasource",
    "steps",
    "outputs",
    "treatments",
    "hypotheses",
    "cli",
}


def config_path_of(path: str | Path) -> Path:
    """``path`` itself when it is a config file, else ``path/config.yaml``."""
    path = Path(path)
    return path / CONFIG_FILE if path.is_dir() else path


class _DuplicateKey(yaml.MarkedYAMLError):
    """A mapping of the file gives the same key twice (YAML would keep the last silently)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping holding the same key twice (merge keys,
    ``<<``, may still override what they bring in)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader says so itself
                continue
            if first is not None:
                raise _DuplicateKey(
                    problem=f"duplicate key {key!r} (first on line {first}); each key may "
                    "appear once in a mapping",
                    problem_mark=key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise MissingConfigError(f"{path}: no such file")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if isinstance(exc, _DuplicateKey):
            raise ConfigError(f"{where}: {problem}") from None
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key '{unknown[0]}' (known keys: {', '.join(sorted(KNOWN_KEYS))})"
        )
    return dict(data)


def experiment_parts(config_path: str | Path, load_other: Callable[[Path], Any]) -> dict[str, Any]:
    """The arguments of the Experiment that ``config_path`` (a config.yaml or its folder)
    describes, but ``outputs`` is a mapping of alias to Artifact. ``load_other`` builds the
    experiment of another folder, one whose output this folder's datasource reads
    (``"other_experiment#alias"``)."""
    config = config_path_of(config_path).resolve()
    cfg = read_config(config)
    mods = Folder(config.parent, config, load_other)
    replicates = cfg.get("replicates", 1)
    if isinstance(replicates, bool) or not isinstance(replicates, int):
        raise ConfigError(f"{config}: key 'replicates' must be an integer, got {replicates!r}")
    outputs = read_outputs(cfg, mods)
    source = read_datasource(cfg, mods, outputs)
    pipeline = read_steps(cfg, mods, outputs)
    name = cfg.get("name") or config.parent.name
    return {
        "datasource": source,
        "pipeline": pipeline,
        "name": str(name),
        "description": cfg.get("description"),
        "treatments": read_treatments(cfg, mods),
        "hypotheses": read_hypotheses(cfg, mods),
        "replicates": replicates,
        "outputs": outputs,
    }


class FolderLoader:
    """Builds the experiment of each config folder once (with ``make(**parts)``, the
    Experiment class), so every experiment that reads another folder's output reads it
    from the same producer; folders that refer to each other in a circle are an error."""

    def __init__(self, make: Callable[..., Any]) -> None:
        self.make = make
        self.loaded: dict[Path, Any] = {}
        self._loading: list[Path] = []

    def __call__(self, folder: str | Path) -> Any:
        config = config_path_of(folder).resolve()
        if config in self._loading:
            loop = [p.parent.name for p in self._loading[self._loading.index(config) :]]
            raise ValidationError(
                f"Experiment graph contains cycles: {' -> '.join([*loop, config.parent.name])}"
            )
        if config not in self.loaded:
            self._loading.append(config)
            try:
                parts = experiment_parts(config, self)
                outputs = parts.pop("outputs")
                experiment = self.make(**parts, outputs=list(outputs.values()))
                experiment.outputs = outputs  # by alias, as references name them
                self.loaded[config] = experiment
            finally:
                self._loading.pop()
        return self.loaded[config]
