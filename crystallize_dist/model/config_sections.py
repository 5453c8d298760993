"""The sections of a ``config.yaml`` experiment folder, each read into model objects.

``Folder`` imports the folder's modules (``datasources.py``, ``steps.py``, ``outputs.py``,
``verifiers.py`` or ``hypotheses.py``) under stable names; each reader turns one section
into datasources, steps, outputs, treatments or hypotheses, and every mistake is a
ConfigError that names the file and the key.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from crystallize_dist.errors import ConfigError, MissingConfigError, ValidationError
from crystallize_dist.model.artifact import Artifact
from crystallize_dist.model.artifact_files import versions
from crystallize_dist.model.artifacts import ArtifactPlugin
from crystallize_dist.model.datasource import DataSource
from crystallize_dist.model.hypothesis import Hypothesis
from crystallize_dist.model.importing import import_file
from crystallize_dist.model.inputs import ExperimentInput
from crystallize_dist.model.pipeline import Pipeline
from crystallize_dist.model.treatment import Treatment, check_treatments


class Folder:
    """The python modules of one config folder, imported under stable names."""

    def __init__(self, folder: Path, config: Path, load: Callable[[Path], Any]) -> None:
        self.folder = folder
        self.config = config
        #: builds the experiment of another config folder (one this folder refers to)
        self.load = load
        tag = re.sub(r"\W", "_", folder.name)
        self.prefix = f"_cdist_cfg_{tag}_{hashlib.sha256(str(folder).encode()).hexdigest()[:8]}"
        self._modules: dict[str, ModuleType | None] = {}

    def module(self, stem: str) -> ModuleType | None:
        if stem not in self._modules:
            path = self.folder / f"{stem}.py"
            self._modules[stem] = (
                import_file(path, name=f"{self.prefix}_{stem}") if path.exists() else None
            )
        return self._modules[stem]

    def factory(self, stem: str, name: str, key: str) -> Any:
        module = self.module(stem)
        if module is None:
            raise ConfigError(
                f"{self.config}: key '{key}' names '{name}' but "
                f"{self.folder / (stem + '.py')} does not exist"
            )
        obj = getattr(module, name, None)
        if obj is None:
            raise ConfigError(f"{self.config}: key '{key}': '{name}' is not defined in {stem}.py")
        return obj


def _call(factory: Any, kwargs: Mapping[str, Any], where: str) -> Any:
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def read_datasource(
    cfg: dict[str, Any], mods: Folder, outputs_of: dict[str, Artifact]
) -> DataSource:
    where = f"{mods.config}: key 'datasource'"
    spec = cfg.get("datasource")
    if spec is None or spec == "" or spec == {}:
        raise ConfigError(f"{where} is missing or empty")
    if isinstance(spec, str):
        spec = {spec: spec}
    if isinstance(spec, list):
        merged: dict[str, Any] = {}
        for item in spec:
            if not isinstance(item, Mapping) or len(item) != 1:
                raise ConfigError(f"{where}: list items must be single-key mappings")
            merged.update(item)
        spec = merged
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be a name, a mapping or a list, got {type(spec).__name__}")
    sources: dict[str, DataSource] = {}
    for alias, target in spec.items():
        if not isinstance(target, str):
            raise ConfigError(f"{where}.{alias} must be a string, got {type(target).__name__}")
        if "#" in target:
            sources[alias] = _reference(target, mods, where)
        else:
            sources[alias] = _call(
                mods.factory("datasources", target, f"datasource.{alias}"), {}, f"{where}.{alias}"
            )
    if len(sources) == 1 and not any("#" in str(t) for t in spec.values()):
        return next(iter(sources.values()))
    return ExperimentInput(**sources)


def _reference(target: str, mods: Folder, where: str) -> Artifact:
    exp_name, _, artifact = target.partition("#")
    other = mods.folder.parent / exp_name
    if not (other / "config.yaml").exists():
        raise MissingConfigError(f"{where}: '{target}' refers to {other}, which has no config.yaml")
    producer = mods.load(other)
    if artifact not in producer.outputs:
        raise ConfigError(f"{where}: experiment '{exp_name}' has no output '{artifact}'")
    out = producer.outputs[artifact]
    meta = None
    try:
        plugin = producer.get_plugin(ArtifactPlugin)
        exp_dir = Path(plugin.root_dir if plugin else "data") / (producer.name or "")
        found = versions(exp_dir)
        if found:
            meta = json.loads((exp_dir / f"v{found[-1]}" / "metadata.json").read_text())
    except (OSError, ValueError):
        meta = None
    if meta:
        out.replicates = meta.get("replicates")
    produced: Artifact = out
    return produced


def read_outputs(cfg: dict[str, Any], mods: Folder) -> dict[str, Artifact]:
    spec = cfg.get("outputs") or {}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{mods.config}: key 'outputs' must be a mapping")
    outs = {}
    for alias, opts in spec.items():
        opts = opts or {}
        if not isinstance(opts, Mapping):
            raise ConfigError(f"{mods.config}: key 'outputs.{alias}' must be a mapping")
        loader = (
            mods.factory("outputs", opts["loader"], f"outputs.{alias}.loader")
            if opts.get("loader")
            else None
        )
        writer = (
            mods.factory("outputs", opts["writer"], f"outputs.{alias}.writer")
            if opts.get("writer")
            else None
        )
        outs[alias] = Artifact(opts.get("file_name", alias), loader=loader, writer=writer)
    return outs


def _artifact_params(factory: Any) -> set[str]:
    fn = inspect.unwrap(factory)
    names = set()
    for name, param in inspect.signature(fn).parameters.items():
        ann = param.annotation
        if ann is Artifact or (isinstance(ann, str) and ann.split(".")[-1] == "Artifact"):
            names.add(name)
    return names


def read_steps(cfg: dict[str, Any], mods: Folder, outputs: dict[str, Artifact]) -> Pipeline:
    spec = cfg.get("steps")
    where = f"{mods.config}: key 'steps'"
    if not spec:
        raise ConfigError(f"{where} is missing or empty")
    if not isinstance(spec, list):
        raise ConfigError(f"{where} must be a list, got {type(spec).__name__}")
    used: set[str] = set()
    steps = []
    for i, item in enumerate(spec):
        kwargs: dict[str, Any]
        if isinstance(item, str):
            name, kwargs = item, {}
        elif isinstance(item, Mapping) and len(item) == 1:
            name, raw = next(iter(item.items()))
            if raw is not None and not isinstance(raw, Mapping):
                raise ConfigError(f"{where}[{i}] '{name}' arguments must be a mapping")
            kwargs = dict(raw or {})
        else:
            raise ConfigError(f"{where}[{i}] must be a name or a single-key mapping")
        factory = mods.factory("steps", name, f"steps[{i}]")
        for pname in _artifact_params(factory):
            value = kwargs.get(pname)
            if isinstance(value, str) and value not in outputs:
                raise ConfigError(
                    f"{where}[{i}] '{name}': parameter '{pname}' asks for output '{value}', "
                    f"which is not in outputs ({', '.join(outputs) or 'none'})"
                )
            alias = (
                value
                if isinstance(value, str) and value in outputs
                else (pname if pname in outputs and pname not in kwargs else None)
            )
            if alias is not None:
                kwargs[pname] = outputs[alias]
                used.add(alias)
        steps.append(_call(factory, kwargs, f"{where}[{i}] '{name}'"))
    unused = sorted(set(outputs) - used)
    if unused:
        raise ConfigError(
            f"{mods.config}: key 'outputs.{unused[0]}' is not used by any step "
            "(pass it to a step parameter annotated Artifact)"
        )
    return Pipeline(steps)


def read_treatments(cfg: dict[str, Any], mods: Folder) -> list[Treatment]:
    spec = cfg.get("treatments") or {}
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{mods.config}: key 'treatments' must be a mapping of name to "
            f"mapping, got {type(spec).__name__}"
        )
    out = []
    for name, changes in spec.items():
        if changes is None:
            changes = {}
        if not isinstance(changes, Mapping):
            raise ConfigError(
                f"{mods.config}: key 'treatments.{name}' must be a mapping, "
                f"got {type(changes).__name__} {changes!r}"
            )
        try:
            out.append(Treatment(str(name), dict(changes)))
        except ValidationError as exc:
            raise ConfigError(f"{mods.config}: key 'treatments.{name}': {exc}") from None
    try:
        return check_treatments(out)
    except ValidationError as exc:
        raise ConfigError(f"{mods.config}: key 'treatments': {exc}") from None


def read_hypotheses(cfg: dict[str, Any], mods: Folder) -> list[Hypothesis]:
    spec = cfg.get("hypotheses") or []
    if not isinstance(spec, list):
        raise ConfigError(f"{mods.config}: key 'hypotheses' must be a list")
    stem = "verifiers" if (mods.folder / "verifiers.py").exists() else "hypotheses"
    out = []
    for i, item in enumerate(spec):
        if not isinstance(item, Mapping) or "verifier" not in item:
            raise ConfigError(f"{mods.config}: key 'hypotheses[{i}]' needs a 'verifier'")
        unknown = sorted(set(item) - {"name", "verifier", "metrics"})
        if unknown:
            raise ConfigError(f"{mods.config}: key 'hypotheses[{i}].{unknown[0]}' is unknown")
        factory = mods.factory(stem, item["verifier"], f"hypotheses[{i}].verifier")
        out.append(
            Hypothesis(
                verifier=_call(factory, {}, f"hypotheses[{i}]"),
                metrics=item.get("metrics"),
                name=item.get("name"),
            )
        )
    return out
