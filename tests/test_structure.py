"""The package's structure: its rooms, the one-way arrows between them, no long import
circles, modules of a readable size, one seed formula.

The import graph is read from the source (every ``import`` statement, also the lazy ones
inside functions and those under ``TYPE_CHECKING``), so it is the graph a reader sees.
"""

from __future__ import annotations

import ast
import re
import statistics
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "crystallize_dist"
#: Crystallize's module paths, kept as aliases of the real objects (no logic of their own)
ALIASES = ("plugins", "utils", "experiments", "datasources", "pipelines")
#: the modules at the package's top: shared by every room
FOUNDATION = {"constants", "errors", "config", "canonical", "urls", "compat"}
#: which rooms each room may import (besides itself and the foundation)
ALLOWED = {
    "foundation": set(),
    "model": set(),
    "engine": {"model"},
    "distributed": {"model", "engine"},
    "cli": {"model", "engine", "distributed"},
    "alias": {"model", "engine"},
    "face": {"model", "engine", "distributed"},
    "main": {"cli"},
}
#: the one way from the model into the engine: Experiment.run / arun / apply / fingerprint
MODEL_TO_ENGINE = {("crystallize_dist.model.experiment", "crystallize_dist.engine.running")}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def room(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "face"
    if parts[1] == "__main__":
        return "main"
    if parts[1] in ALIASES:
        return "alias"
    if len(parts) == 2 and parts[1] in FOUNDATION:
        return "foundation"
    return parts[1]


def _target(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> Iterator[str]:
    """The package's modules ``module`` imports (a name imported from a module counts as
    that module; a submodule imported from a package counts as the submodule)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, *([node.module] if node.module else [])])
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        else:
            continue
        for name in names:
            if name.split(".")[0] == "crystallize_dist":
                found = _target(name)
                if found and found != module:
                    yield found


GRAPH = {m: set(imports(m)) for m in MODULES}


def _circles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_spans_more_than_three_modules() -> None:
    big = [c for c in _circles() if len(c) > 3]
    assert not big, big


def test_arrows_between_rooms_go_one_way() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        mine = room(module)
        for target in targets:
            theirs = room(target)
            if theirs in (mine, "foundation"):
                continue
            if (module, target) in MODEL_TO_ENGINE:
                continue
            if theirs not in ALLOWED[mine]:
                wrong.append(f"{module} ({mine}) -> {target} ({theirs})")
    assert not wrong, wrong


def test_the_foundation_imports_only_the_foundation() -> None:
    wrong = [
        f"{m} -> {t}"
        for m, targets in GRAPH.items()
        if room(m) == "foundation"
        for t in targets
        if room(t) != "foundation"
    ]
    assert not wrong, wrong


def test_model_and_engine_never_import_celery_kombu_or_redis() -> None:
    bad = []
    for module, path in MODULES.items():
        if room(module) not in ("model", "engine", "foundation"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            bad += [
                f"{module}: {n}" for n in names if n.split(".")[0] in ("celery", "kombu", "redis")
            ]
    assert not bad, bad


_PRIVATE_USE = re.compile(r"(\.?)(\w+|\)|\])\._([a-z]\w*)")


def _private_uses(line: str) -> list[str]:
    """``owner._name`` uses in a line of code, but for ``self`` / ``cls`` (and ``os._exit``)."""
    code = line.split("#")[0]
    return [
        f"{owner}._{name}"
        for dot, owner, name in _PRIVATE_USE.findall(code)
        if dot or owner not in ("self", "cls", "os", "sys")
    ]


def test_no_room_touches_another_rooms_private_names() -> None:
    """Outside the model, no ``obj._name`` but on ``self`` / ``cls`` (the model's objects'
    private state is the model's own), and no ``_name`` imported from another room."""
    wrong = []
    for module, path in MODULES.items():
        mine = room(module)
        text = path.read_text()
        if mine in ("engine", "distributed", "cli", "alias", "face", "main"):
            for line_no, line in enumerate(text.splitlines(), 1):
                wrong += [f"{module}:{line_no}: {use}" for use in _private_uses(line)]
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module:
                target = _target(node.module)
                if target and room(target) != mine:
                    wrong += [
                        f"{module}: from {node.module} import {a.name}"
                        for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")
                    ]
    assert not wrong, wrong


def _sizes() -> dict[str, int]:
    return {m: len(p.read_text().splitlines()) for m, p in MODULES.items() if room(m) != "alias"}


def test_no_module_is_over_300_lines_and_the_median_is_at_most_120() -> None:
    sizes = _sizes()
    big = {m: n for m, n in sizes.items() if n > 300}
    assert not big, big
    assert statistics.median(sizes.values()) <= 120


def test_the_seed_formula_is_written_once() -> None:
    """One function derives a cell's seed (``model/seeding.py``); its stride appears in no
    other module of the package."""
    holders = sorted(m for m, p in MODULES.items() if "31337" in p.read_text())
    assert holders == ["crystallize_dist.model.seeding"], holders
    defs = [
        m
        for m, p in MODULES.items()
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name == "derive_seed"
    ]
    assert defs == ["crystallize_dist.model.seeding"], defs


def test_alias_packages_hold_no_logic_of_their_own() -> None:
    """An alias module only imports and lists names (Crystallize's process-pool entry point,
    kept for code that patches it, is the one function)."""
    for module, path in MODULES.items():
        if room(module) != "alias":
            continue
        tree = ast.parse(path.read_text())
        defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        assert defs in ([], ["_run_replicate_remote"]), (module, defs)
