"""The experiment fingerprint: a hash of the code and parameters that define an experiment.

Covers the datasource, every step, every treatment and the hypotheses: for each, its class
or function name, its parameters (canonical JSON) and the text of the source file that
defines it (the whole file, so a change to a helper in the same file counts), falling back to
the function's own source or bytecode when there is no file. It also covers every ``.py``
file in the folders holding those files (sub-folders included; hidden folders, caches and
installed packages left out), so changing a helper module the steps import changes it too.
Two machines with the same files get the same fingerprint; a worker compares it with the
manifest before running a cell, and ``resume`` refuses changed code.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystallize_dist.core.canonical import canonical_json
from crystallize_dist.core.sources import ignore_patterns, is_ignored
from crystallize_dist.core.step import source_hash

if TYPE_CHECKING:
    from crystallize_dist.core.experiment import Experiment

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


#: at most this many files of a folder count (a huge folder counts by its defining files only).
TREE_FILE_LIMIT = 2000
_SKIP_DIRS = {"site-packages", "dist-packages", "node_modules"}


def _defining_file(obj: Any) -> Path | None:
    target = obj if inspect.isfunction(obj) or inspect.isclass(obj) else type(obj)
    module = sys.modules.get(getattr(target, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    return Path(path).resolve() if path and path.endswith(".py") else None


def _installed(folder: Path) -> bool:
    return (
        any(part in ("site-packages", "dist-packages") for part in folder.parts)
        or folder == Path(inspect.getfile(inspect)).resolve().parent
    )


def tree_hash(folder: Path) -> str | None:
    """sha256 over the relative paths and contents of the ``.py`` files under ``folder``,
    or None for an installed package or a folder of more than TREE_FILE_LIMIT files."""
    if _installed(folder):
        return None
    patterns = ignore_patterns(folder)  # what a code bundle of this folder would leave out
    files = []
    for here, dirs, names in os.walk(folder):
        rel = Path(here).relative_to(folder).as_posix()
        prefix = "" if rel == "." else rel + "/"
        dirs[:] = sorted(
            d for d in dirs if d not in _SKIP_DIRS and not is_ignored(prefix + d, patterns)
        )
        files += [
            Path(here) / n
            for n in names
            if n.endswith(".py") and not is_ignored(prefix + n, patterns)
        ]
        if len(files) > TREE_FILE_LIMIT:
            return None
    digest = hashlib.sha256()
    for path in sorted(files):
        file_digest = _file_hash(str(path))
        if file_digest is not None:
            digest.update(f"{path.relative_to(folder).as_posix()}\0{file_digest}\n".encode())
    return digest.hexdigest()


def _describe(obj: Any) -> dict[str, Any]:
    code_obj = getattr(obj, "_fn", None) or obj
    return {
        "kind": type(obj).__name__,
        "params": canonical_json(getattr(obj, "params", {})),
        "code": code_hash(code_obj),
    }


def _treatment_parts(treatments: Iterable[Any]) -> list[Any]:
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


def fingerprint(experiment: Experiment) -> str:
    """sha256 over the experiment's datasource, steps and treatments (see module doc)."""
    parts: dict[str, Any] = {
        "datasource": _describe(experiment.datasource),
        "steps": [_describe(s) for s in experiment.pipeline.steps],
        "treatments": _treatment_parts(experiment.treatments),
        "signature": experiment.pipeline.signature(),
    }
    owners = [experiment.datasource, *experiment.pipeline.steps]
    files = {f for f in (_defining_file(getattr(o, "_fn", None) or o) for o in owners) if f}
    parts["trees"] = sorted(h for h in (tree_hash(f.parent) for f in files) if h)
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()
