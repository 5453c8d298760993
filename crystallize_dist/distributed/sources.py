"""Which files of an experiment's folder are its code: the same rules decide what a code
bundle ships (distributed/packing.py) and what the experiment fingerprint covers."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path

from crystallize_dist import constants as C

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
