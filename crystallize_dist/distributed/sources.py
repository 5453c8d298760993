"""Where an experiment's code is, and which files of its folder are its code: the same
rules decide what a code bundle ships (distributed/packing.py) and what the experiment
fingerprint covers; code installed on a machine (site-packages, the standard library) is
never shipped, and is the one code a worker with a secret runs without a bundle."""

from __future__ import annotations

import fnmatch
import importlib.util
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

from crystallize_dist import constants as C
from crystallize_dist.model.references import ExperimentRef

#: Always left out of a bundle: hidden files and folders (VCS data, caches, virtualenvs,
#: ``.env``, ``.ssh``, ``.aws`` ...), key files, our own home, data folders.
DEFAULT_IGNORE = (
    ".*",
    "*.pem",
    "*.key",
    "id_rsa*",
    "id_ed25519*",
    ".git",
    "__pycache__",
    "*.pyc",
    C.HOME_DIRNAME,
    "data",
    ".cache",
    ".venv",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
    ".ipynb_checkpoints",
)
#: A file in the bundle's root holding more glob patterns, one a line (``#`` comments).
IGNORE_FILE = ".crystallizeignore"


def ignore_patterns(root: Path) -> list[str]:
    """The default patterns plus those in ``root/.crystallizeignore``."""
    patterns = list(DEFAULT_IGNORE)
    extra = root / IGNORE_FILE
    if extra.is_file():
        for line in extra.read_text(errors="replace").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                patterns.append(line.rstrip("/"))
    return patterns


def is_ignored(rel: str, patterns: Sequence[str]) -> bool:
    """Whether the relative posix path ``rel`` matches a pattern: patterns without ``/`` match
    any single path component, patterns with ``/`` match the whole path from the root."""
    parts = rel.split("/")
    for pattern in patterns:
        if "/" in pattern:
            if fnmatch.fnmatchcase(rel, pattern.lstrip("/")):
                return True
        elif any(fnmatch.fnmatchcase(part, pattern) for part in parts):
            return True
    return False


def _installed(path: Path) -> bool:
    """Whether ``path`` lives in site-packages / the standard library (workers install it)."""
    if {"site-packages", "dist-packages"} & set(path.parts):
        return True
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        base = paths.get(key)
        if base and path.is_relative_to(Path(base).resolve()):
            return True
    return False


def installed_module(dotted: str) -> bool:
    """Whether the top-level package of module ``dotted`` is installed on this machine (in
    site-packages or the standard library, or crystallize_dist itself): code the machine's
    owner put there, not code a run store points to."""
    top = dotted.split(".")[0]
    if top == "crystallize_dist" or top in sys.stdlib_module_names:
        return True
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    places = list(spec.submodule_search_locations or ([spec.origin] if spec.origin else []))
    return bool(places) and all(_installed(Path(place).resolve()) for place in places)


def module_source(dotted: str) -> tuple[Path, str, str] | None:
    """``(root, only, relpath)`` for a module reference: the folder holding the top-level
    package (or lone module), that package's name, and the module file relative to root."""
    top = dotted.split(".")[0]
    if top == "crystallize_dist" or top in sys.stdlib_module_names:
        return None
    try:
        top_spec = importlib.util.find_spec(top)
        spec = importlib.util.find_spec(dotted)
    except (ImportError, ValueError):
        return None
    if top_spec is None or spec is None or not spec.origin or not spec.has_location:
        return None
    origin = Path(spec.origin).resolve()
    if top_spec.submodule_search_locations:  # a package: pack its folder
        locations = list(top_spec.submodule_search_locations)
        if len(locations) != 1:
            return None  # a namespace package spread over folders: not bundled
        root = Path(locations[0]).resolve().parent
        only = top
    elif top_spec.origin:
        root = Path(top_spec.origin).resolve().parent
        only = Path(top_spec.origin).name
    else:
        return None
    if _installed(root / only) or not origin.is_relative_to(root):
        return None
    return root, only, origin.relative_to(root).as_posix()


def bundle_source(ref: ExperimentRef) -> tuple[Path, str | None, str] | None:
    """What to pack for ``ref``: ``(root, only, relpath)``, or None when workers are
    expected to have the code installed (an installed module)."""
    target = Path(ref.target)
    if ref.kind == "file":
        return target.parent, None, target.name
    if ref.kind == "folder":
        return target, None, "."
    return module_source(ref.target)
