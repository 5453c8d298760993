"""The experiment fingerprint: a hash of the code and parameters that define an experiment.

Covers the datasource, every step, every treatment and the hypotheses: for each, its class
or function name, its parameters (canonical JSON) and the text of the source file that
defines it (the whole file, so a change to a helper in the same file counts), falling back to
the function's own source or bytecode when there is no file. It also covers the ``.py``
files those files import from their own folder and package, transitively (found by reading
their import statements; installed packages left out), so changing a helper module the
steps import changes it, and a scratch file nothing imports does not.
Two machines with the same files get the same fingerprint; a worker compares it with the
manifest before running a cell, and ``resume`` refuses changed code.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystallize_dist.canonical import canonical_json
from crystallize_dist.model.importing import import_root, installed
from crystallize_dist.model.step import source_hash

if TYPE_CHECKING:
    from crystallize_dist.model.pipeline import Pipeline

_FILE_HASHES: dict[tuple[str, float, int], str] = {}


def _file_hash(path: str) -> str | None:
    try:
        st = Path(path).stat()
    except OSError:
        return None
    key = (path, st.st_mtime, st.st_size)
    if key not in _FILE_HASHES:
        # normalise line endings so a checkout on another OS hashes the same
        text = Path(path).read_bytes().replace(b"\r\n", b"\n")
        _FILE_HASHES[key] = hashlib.sha256(text).hexdigest()
    return _FILE_HASHES[key]


def code_hash(obj: Any) -> str:
    """Hash of the source file defining ``obj`` (or of its own source / bytecode)."""
    target = obj if inspect.isfunction(obj) or inspect.isclass(obj) else type(obj)
    module = sys.modules.get(getattr(target, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    if path and path.endswith(".py"):
        digest = _file_hash(path)
        if digest is not None:
            return digest
    return source_hash(target)


#: at most this many imported files count (a bigger closure counts by its defining files only).
CLOSURE_FILE_LIMIT = 2000
_IMPORTS: dict[tuple[str, float, int], list[tuple[int, str, tuple[str, ...]]]] = {}


def _defining_file(obj: Any) -> Path | None:
    target = obj if inspect.isfunction(obj) or inspect.isclass(obj) else type(obj)
    module = sys.modules.get(getattr(target, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    return Path(path).resolve() if path and path.endswith(".py") else None


def _imports(path: Path) -> list[tuple[int, str, tuple[str, ...]]]:
    """``(level, module, names)`` of every import statement in a file, nested ones too."""
    try:
        st = path.stat()
    except OSError:
        return []
    key = (str(path), st.st_mtime, st.st_size)
    if key not in _IMPORTS:
        found: list[tuple[int, str, tuple[str, ...]]] = []
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError, OSError):
            tree = ast.Module(body=[], type_ignores=[])
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(0, alias.name, ()) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                found.append((node.level, node.module or "", tuple(a.name for a in node.names)))
        _IMPORTS[key] = found
    return _IMPORTS[key]


def _module_files(base: Path, dotted: str) -> list[Path]:
    """The files importing ``dotted`` from folder ``base`` runs (package ``__init__``s on
    the way, then the module), or [] when it is not found there."""
    files: list[Path] = []
    here = base
    parts = dotted.split(".") if dotted else []
    for i, part in enumerate(parts):
        package = here / part
        if (package / "__init__.py").is_file():
            files.append(package / "__init__.py")
        elif i == len(parts) - 1 and (here / f"{part}.py").is_file():
            files.append(here / f"{part}.py")
            break
        elif not package.is_dir():  # (a folder without __init__ is a namespace package)
            return []
        here = package
    return files


def _resolve(
    path: Path, level: int, module: str, names: tuple[str, ...], roots: list[Path]
) -> list[Path]:
    """Files under ``roots`` (or relative to ``path``) that one import statement runs."""
    if level:
        base = path.parent
        for _ in range(level - 1):
            base = base.parent
        bases = [base]
    else:
        bases = roots
    for base in bases:
        files = _module_files(base, module) if module else []
        if module and not files:
            continue
        package = base.joinpath(*module.split(".")) if module else base
        for name in names:  # ``from package import submodule``
            files += _module_files(package, name)
        if files:
            return files
    return []


def closure_hash(files: Iterable[Path]) -> str | None:
    """sha256 over the ``.py`` files that ``files`` import from their own folders and
    packages, transitively (found by reading import statements, nested ones included; not
    ``importlib.import_module`` calls). A file nothing imports does not count, nor do
    installed packages. None when more than CLOSURE_FILE_LIMIT files are reached."""
    start = [f for f in files if not installed(f.parent)]
    roots = sorted({r for f in start for r in (f.parent, import_root(f.parent))})
    seen: dict[Path, Path] = {}  # file -> the root it is named relative to
    todo = list(start)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        # named from the nearest root: a file next to the experiment by its own name, so
        # the same files hash the same wherever the folder is (a code bundle, say)
        holders = [r for r in roots if path.is_relative_to(r)]
        seen[path] = max(holders, key=lambda r: len(r.parts)) if holders else path.parent
        if len(seen) > CLOSURE_FILE_LIMIT:
            return None
        for level, module, names in _imports(path):
            todo += _resolve(path, level, module, names, roots)
    digest = hashlib.sha256()
    for path in sorted(seen, key=lambda p: p.relative_to(seen[p]).as_posix()):
        file_digest = _file_hash(str(path))
        if file_digest is not None:
            digest.update(f"{path.relative_to(seen[path]).as_posix()}\0{file_digest}\n".encode())
    return digest.hexdigest()


def _describe(obj: Any) -> dict[str, Any]:
    code_obj = getattr(obj, "_fn", None) or obj
    return {
        "kind": type(obj).__name__,
        "params": canonical_json(getattr(obj, "params", {})),
        "code": code_hash(code_obj),
    }


def treatment_parts(treatments: Iterable[Any]) -> list[Any]:
    """What the fingerprint takes of each treatment: its name and its map or code."""
    parts = []
    for t in treatments:
        apply_map = t.apply_map
        parts.append(
            {
                "name": t.name,
                "map": canonical_json(apply_map) if apply_map else None,
                "code": None
                if apply_map
                else code_hash(getattr(t.apply_fn, "__func__", t.apply_fn)),
            }
        )
    return parts


def fingerprint_parts(datasource: Any, pipeline: Pipeline, treatments: Iterable[Any]) -> str:
    """sha256 over an experiment's datasource, steps and treatments (see module doc)."""
    parts: dict[str, Any] = {
        "datasource": _describe(datasource),
        "steps": [_describe(s) for s in pipeline.steps],
        "treatments": treatment_parts(treatments),
        "signature": pipeline.signature(),
    }
    owners = [datasource, *pipeline.steps]
    files = {f for f in (_defining_file(getattr(o, "_fn", None) or o) for o in owners) if f}
    parts["imports"] = closure_hash(sorted(files))
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()
