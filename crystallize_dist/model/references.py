"""Experiment references: how an experiment travels between processes and machines.

A reference is text in one of three forms:

- ``package.module:attr`` - an importable module (attr defaults to ``experiment``);
- ``path/to/file.py[:attr]`` - a Python file (made absolute when resolved);
- ``path/to/folder`` or ``path/to/folder/config.yaml`` - a config folder.

The attribute may be an Experiment or a zero-argument callable returning one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crystallize_dist.errors import ExperimentLoadError
from crystallize_dist.model.config_folder import CONFIG_FILE
from crystallize_dist.model.experiment import Experiment
from crystallize_dist.model.importing import import_dotted, import_file

DEFAULT_ATTR = "experiment"
KINDS = ("module", "file", "folder")


@dataclass(frozen=True)
class ExperimentRef:
    """A resolved reference: ``kind`` is module / file / folder; ``target`` a dotted name or
    an absolute path; ``attr`` the attribute (module and file kinds)."""

    kind: str
    target: str
    attr: str = DEFAULT_ATTR

    def __str__(self) -> str:
        return self.target if self.kind == "folder" else f"{self.target}:{self.attr}"

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "target": self.target, "attr": self.attr}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentRef:
        kind = data.get("kind")
        if kind not in KINDS or not isinstance(data.get("target"), str):
            raise ExperimentLoadError(f"malformed experiment reference {data!r}")
        return cls(kind, data["target"], str(data.get("attr") or DEFAULT_ATTR))


def parse_ref(text: str, base: Path | None = None) -> ExperimentRef:
    """Resolve reference text (relative paths against ``base`` or the working directory)."""
    if not text or not text.strip():
        raise ExperimentLoadError("empty experiment reference")
    base = base or Path.cwd()
    raw, attr = text, None
    head, sep, tail = text.rpartition(":")
    if sep and tail and tail.isidentifier() and head:
        raw, attr = head, tail
    path = Path(raw)
    path = path if path.is_absolute() else base / path
    if path.is_dir():
        if not (path / CONFIG_FILE).exists():
            raise ExperimentLoadError(f"{path}: folder has no {CONFIG_FILE}")
        return ExperimentRef("folder", str(path.resolve()))
    if path.name == CONFIG_FILE:
        if not path.exists():
            raise ExperimentLoadError(f"{path}: no such file")
        return ExperimentRef("folder", str(path.parent.resolve()))
    if raw.endswith(".py") or path.is_file():
        if not path.exists():
            raise ExperimentLoadError(f"{path}: no such file")
        return ExperimentRef("file", str(path.resolve()), attr or DEFAULT_ATTR)
    if all(part.isidentifier() for part in raw.split(".")):
        return ExperimentRef("module", raw, attr or DEFAULT_ATTR)
    raise ExperimentLoadError(
        f"'{text}' is not a module path (package.module:attr), a .py file or a folder "
        "with config.yaml"
    )


def _upstream(obj: Any, where: str) -> ExperimentLoadError:
    """The error for an object crystallize-ml built (it is installed, so the file's
    ``crystallize`` imports were not aliased): how to switch the file's imports."""
    from crystallize_dist.compat import SWITCH_HINT

    return ExperimentLoadError(f"{where} is a crystallize-ml {type(obj).__name__}: {SWITCH_HINT}")


def _from_upstream(obj: Any) -> bool:
    return str(getattr(type(obj), "__module__", "")).split(".")[0] == "crystallize"


def _materialise(obj: Any, where: str) -> Experiment:
    if isinstance(obj, Experiment):
        return obj
    if _from_upstream(obj):
        raise _upstream(obj, where)
    if callable(obj) and not isinstance(obj, type):
        try:
            made = obj()
        except Exception as exc:  # user code: one line that says where, not a traceback
            raise ExperimentLoadError(
                f"{where}: calling it failed: {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(made, Experiment):
            return made
        if _from_upstream(made):
            raise _upstream(made, where)
        raise ExperimentLoadError(f"{where} returned a {type(made).__name__}, not an Experiment")
    raise ExperimentLoadError(
        f"{where} is a {type(obj).__name__}, not an Experiment or a function returning one"
    )


def load_ref(ref: ExperimentRef) -> Experiment:
    """Import the experiment a reference points to (a file written for Crystallize imports
    ``crystallize``: the alias of ``crystallize_dist.compat`` is put in place first)."""
    from crystallize_dist import compat  # importing it puts the alias in place

    compat.install()
    if ref.kind == "folder":
        return Experiment.from_yaml(ref.target)
    module = import_file(ref.target) if ref.kind == "file" else import_dotted(ref.target)
    if not hasattr(module, ref.attr):
        where = ref.target
        raise ExperimentLoadError(f"{where} has no attribute '{ref.attr}'")
    return _materialise(getattr(module, ref.attr), f"{ref}")


def load_experiment(text: str, base: Path | None = None) -> tuple[Experiment, ExperimentRef]:
    """Parse and load a reference; returns the experiment and its resolved reference."""
    ref = parse_ref(text, base)
    return load_ref(ref), ref


def find_ref(experiment: Experiment) -> ExperimentRef | None:
    """A reference that loads ``experiment``: a module-level attribute that *is* it, looked
    for in the modules defining its datasource and steps first, then in ``__main__``. A
    script is used only when the attribute is set at its top level: a worker imports the
    script, so an attribute set under ``if __name__ == "__main__":`` would not be there."""
    import sys

    names = [type(experiment.datasource).__module__]
    names += [type(s).__module__ for s in experiment.pipeline.steps]
    for name in [*dict.fromkeys(names), "__main__"]:
        module = sys.modules.get(name)
        if module is None:
            continue
        for attr, value in vars(module).items():
            if value is not experiment:
                continue
            path = getattr(module, "__cdist_path__", None)
            if name == "__main__":
                path = getattr(module, "__file__", None)
                if not path or attr not in top_level_names(Path(path)):
                    continue
            if path:
                return ExperimentRef("file", str(Path(path).resolve()), attr)
            return ExperimentRef("module", name, attr)
    return None


def top_level_names(path: Path) -> set[str]:
    """Names a Python file binds when it is imported (not run as a script): its top-level
    assignments, definitions and imports, also inside top-level ``if`` / ``try`` / ``with``
    blocks, but not under ``if __name__ == "__main__":``."""
    import ast

    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return set()
    names: set[str] = set()

    def main_guard(node: ast.stmt) -> str | None:
        """'==' / '!=' for ``if __name__ == / != "__main__":``, else None."""
        test = getattr(node, "test", None)
        if not (isinstance(node, ast.If) and isinstance(test, ast.Compare)):
            return None
        if not (isinstance(test.left, ast.Name) and test.left.id == "__name__"):
            return None
        if len(test.ops) != 1 or not isinstance(test.comparators[0], ast.Constant):
            return None
        if test.comparators[0].value != "__main__":
            return None
        return {ast.Eq: "==", ast.NotEq: "!="}.get(type(test.ops[0]))

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            guard = main_guard(node)
            if guard is not None:  # only the branch that runs on import
                visit(node.orelse if guard == "==" else node.body)  # type: ignore[attr-defined]
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            for field in ("body", "orelse", "finalbody"):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    visit(getattr(node, field, []) or [])
            for handler in getattr(node, "handlers", []) or []:
                visit(handler.body)

    visit(tree.body)
    return names
