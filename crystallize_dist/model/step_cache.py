"""The step cache: a cacheable step's output stored under its step hash and input hash.

A cached output lives at ``CACHE_DIR/<step_hash>/<input_hash>.pkl`` (``CACHE_DIR`` comes from
``CRYSTALLIZE_CACHE_DIR``, default ``.cache``, read at import as in Crystallize). The key is
the step's code and params and the pickled input data, not the context: every replicate and
treatment with the same input shares one stored output.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

CACHE_DIR = Path(os.environ.get("CRYSTALLIZE_CACHE_DIR", ".cache"))
#: What ``load`` returns when nothing is stored.
MISS: Any = object()


def data_hash(data: Any) -> str | None:
    """sha256 of the pickled data, or None when the data cannot be pickled."""
    try:
        return hashlib.sha256(pickle.dumps(data)).hexdigest()
    except Exception:
        return None


def load(step_hash: str, input_hash: str | None) -> Any:
    """The stored output of a step for an input, or MISS."""
    if input_hash is None:
        return MISS
    path = CACHE_DIR / step_hash / f"{input_hash}.pkl"
    try:
        with path.open("rb") as fh:
            return pickle.load(fh)
    except (OSError, EOFError, pickle.UnpicklingError):
        return MISS


def store(step_hash: str, input_hash: str | None, value: Any) -> None:
    """Store a step's output for an input; the first complete write wins."""
    if input_hash is None:
        return
    folder = CACHE_DIR / step_hash
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{input_hash}.pkl"
    if target.exists():
        return
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        pickle.dump(value, fh)
    os.replace(tmp, target)  # atomic: readers never see half a file
