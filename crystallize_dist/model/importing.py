"""Importing user code by file path or dotted name, with one-line errors that say where."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
import sysconfig
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from crystallize_dist.errors import ExperimentLoadError


def _where(exc: BaseException, path: Path | None) -> str:
    """``file:line`` of the innermost frame of user code in ``exc``'s traceback."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if _user_frame(f.filename)]  # the user's line, not ours or os's
    if user:
        return f"{user[-1].filename}:{user[-1].lineno}"
    return str(path) if path else "?"


_PACKAGE = Path(__file__).resolve().parents[1]


def _user_frame(filename: str) -> bool:
    if filename.startswith("<") or "importlib" in filename:
        return False
    where = Path(filename).resolve()
    return not where.is_relative_to(_PACKAGE) and not installed(where)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg}"
    return f"{type(exc).__name__}: {exc}"


_IMPORT_LOCK = threading.RLock()


def importable_names(folder: Path) -> set[str]:
    """Top-level module and package names importable from ``folder``."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return set()
    return {
        p.stem if p.suffix == ".py" else p.name
        for p in entries
        if p.suffix == ".py" or (p / "__init__.py").is_file()
    }


_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


def installed(path: Path) -> bool:
    """A path inside an installed package or the standard library (not user code)."""
    return any(part in ("site-packages", "dist-packages") for part in path.parts) or (
        path.is_relative_to(_STDLIB)
    )


def activate_folder(folder: Path, tops: set[str], drop: Callable[[Path | None], bool]) -> None:
    """Make ``folder`` win imports in this (perhaps long-lived) process: first on sys.path,
    and loaded modules named like its own (``tops``) but loaded from elsewhere forgotten
    when ``drop(their file)`` says so - a worker that ran an experiment from another
    folder with a ``helper.py`` of its own must not hand that helper to this one. Already
    loaded code keeps the modules it holds."""
    entry = str(folder)
    sys.path[:] = [entry, *(p for p in sys.path if p != entry)]
    tops = tops - {"crystallize_dist", *sys.stdlib_module_names}
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in tops:
            continue
        if "__cdist_path__" in vars(module):  # an experiment file loaded by path: kept
            continue
        where = getattr(module, "__file__", None)
        path = Path(where).resolve() if where else None
        if path is not None and path.is_relative_to(folder):
            continue
        if drop(path):
            del sys.modules[name]
    importlib.invalidate_caches()


def import_root(folder: Path) -> Path:
    """The folder a package's absolute imports start from (above its top package)."""
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        folder = folder.parent
    return folder


#: sha256 of each user module's source as this process imported it (see refresh_folder)
_SOURCES: dict[Path, str | None] = {}


def _source_hash(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _folder_modules(folder: Path) -> list[tuple[str, Path]]:
    """The loaded user modules whose files are under ``folder``."""
    prefix = str(folder)
    out = []
    for name, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None)
        if not where or not where.startswith(prefix) or name == "__main__":
            continue
        if name.split(".")[0] == "crystallize_dist":
            continue
        path = Path(where).resolve()
        if path.is_relative_to(folder) and not installed(path):
            out.append((name, path))
    return out


def remember_folder(folder: Path) -> None:
    """Note the source of the modules just imported from ``folder`` (see refresh_folder)."""
    for _, path in _folder_modules(import_root(folder)):
        if path not in _SOURCES:
            _SOURCES[path] = _source_hash(path)


def refresh_folder(folder: Path) -> None:
    """Forget every loaded module of ``folder`` (its package, when it is one) once any of
    their sources changed since they were imported: a long-lived process - a worker, a
    notebook - must run an edited experiment or helper as it now is, not as first loaded.
    All of them go, since an unchanged module may hold names of a changed one."""
    found = _folder_modules(import_root(folder))
    changed = False
    for _, path in found:
        now = _source_hash(path)
        changed |= _SOURCES.setdefault(path, now) != now  # first seen: taken as imported
    if not changed:
        return
    for name, path in found:
        sys.modules.pop(name, None)
        _SOURCES.pop(path, None)
    importlib.invalidate_caches()


def _user_code(path: Path | None) -> bool:
    """A module file that is user code (not built in, not an installed package)."""
    return path is not None and not installed(path)


def import_file(path: str | Path, *, name: str | None = None) -> ModuleType:
    """Import a .py file as a module whose classes pickle by reference.

    The module is registered under ``name`` (default: the file's stem, or a stem made unique
    with a hash when that name is taken by another file); its folder is put on ``sys.path``
    so it can import its neighbours. Thread-safe: a second thread never sees a module that
    is still executing.
    """
    with _IMPORT_LOCK:
        return _import_file(Path(path).resolve(), name)


def _import_file(path: Path, name: str | None) -> ModuleType:
    if not path.is_file():
        raise ExperimentLoadError(f"{path}: no such file")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    refresh_folder(path.parent)
    if name is not None:  # a config folder's module: its neighbours win, as below
        activate_folder(path.parent, importable_names(path.parent), _user_code)
    else:
        cached = sys.modules.get(path.stem)
        if cached is None or Path(getattr(cached, "__file__", "") or "/").resolve() != path:
            # a new file: its neighbours win over same-named modules of other folders
            activate_folder(path.parent, importable_names(path.parent), _user_code)
        name = path.stem if re.fullmatch(r"[A-Za-z_]\w*", path.stem) else "_cdist_file"
        existing = sys.modules.get(name)
        if existing is not None:
            existing_file = getattr(existing, "__file__", None)
            if existing_file and Path(existing_file).resolve() == path:
                return existing
            name = f"_cdist_{hashlib.sha256(str(path).encode()).hexdigest()[:10]}_{name}"
            if name in sys.modules:
                return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ExperimentLoadError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    module.__dict__["__cdist_path__"] = str(path)  # loaded by path: refer to it by path
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ExperimentLoadError(
            f"{_where(exc, path)}: cannot import {path.name}: {_describe(exc)}"
        ) from exc
    remember_folder(path.parent)
    return module


def import_dotted(name: str) -> ModuleType:
    """Import a module by dotted name (the working directory is on the path)."""
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise ExperimentLoadError(
            f"cannot import module '{name}': ModuleNotFoundError: {exc}"
        ) from exc
    except Exception as exc:
        raise ExperimentLoadError(
            f"{_where(exc, None)}: cannot import module '{name}': {_describe(exc)}"
        ) from exc
