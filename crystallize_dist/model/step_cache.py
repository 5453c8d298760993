"""The step cache: a cacheable step's output stored under its step hash and input hash.

A cached output lives at ``CACHE_DIR/<step_hash>/<input_hash>.pkl`` (``CACHE_DIR`` comes from
``CRYSTALLIZE_CACHE_DIR``, default ``.cache``, read at import as in Crystallize). The key is
the step's code and params and the pickled input data, not the context: every replicate and
treatment with the same input shares one stored output.

``compute_hash``, ``cache_path``, ``load_cache`` and ``store_cache`` are Crystallize's
``crystallize.utils.cache`` functions; the step loop uses ``data_hash``, ``load`` and
``store``, which say "nothing stored" with ``MISS`` instead of an exception.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import threading
from pathlib import Path
from typing import Any

from crystallize_dist.errors import CacheError

CACHE_DIR = Path(os.environ.get("CRYSTALLIZE_CACHE_DIR", ".cache"))
#: What ``load`` returns when nothing is stored.
MISS: Any = object()


def compute_hash(obj: Any) -> str:
    """sha256 of the pickled object (raises when it cannot be pickled)."""
    return hashlib.sha256(pickle.dumps(obj)).hexdigest()


def data_hash(data: Any) -> str | None:
    """sha256 of the pickled data, or None when the data cannot be pickled."""
    try:
        return compute_hash(data)
    except Exception:
        return None


def cache_path(step_hash: str, input_hash: str) -> Path:
    """Where the output of a step for an input is stored (its folder is made)."""
    folder = CACHE_DIR / step_hash
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{input_hash}.pkl"


def load_cache(step_hash: str, input_hash: str) -> Any:
    """The stored output; FileNotFoundError when none is stored, CacheError (an OSError)
    when the stored file cannot be read back."""
    path = CACHE_DIR / step_hash / f"{input_hash}.pkl"
    if not path.exists():
        raise FileNotFoundError(f"no cached output at {path}")
    try:
        with path.open("rb") as fh:
            return pickle.load(fh)
    except Exception as exc:
        raise CacheError(f"cannot read the cached step output {path}: {exc}") from exc


def store_cache(step_hash: str, input_hash: str, data: Any) -> None:
    """Store a step's output for an input; the first complete write wins (written to a
    temporary file and renamed, so readers never see half a file). An output that cannot
    be pickled, or a cache folder that cannot be written, raises CacheError (an OSError)."""
    try:
        target = cache_path(step_hash, input_hash)
        if target.exists():
            return
        tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with tmp.open("wb") as fh:
                pickle.dump(data, fh)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    except Exception as exc:
        raise CacheError(
            f"cannot store the output of step {step_hash[:12]} in the step cache "
            f"{CACHE_DIR}: {type(exc).__name__}: {exc}"
        ) from exc


def load(step_hash: str, input_hash: str | None) -> Any:
    """The stored output of a step for an input, or MISS (also for an unreadable file)."""
    if input_hash is None:
        return MISS
    try:
        return load_cache(step_hash, input_hash)
    except OSError:
        return MISS


def store(step_hash: str, input_hash: str | None, value: Any) -> None:
    """``store_cache``, skipped when the input could not be hashed."""
    if input_hash is not None:
        store_cache(step_hash, input_hash, value)
