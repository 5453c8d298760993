"""Seeds: the one formula that derives a cell's seed, and the functions that seed generators.

Every cell of replicate ``r`` gets ``derive_seed(master, r)``, Crystallize's formula. The
plan calls it once per replicate before anything runs; workers read the seeds from the run's
manifest and never derive them. ``seed_everything`` and ``default_seed_function`` note which
libraries they seeded in the running cell's provenance; ``generator_state`` and
``drawn_from`` tell whether a cell drew from the global generators (``first_replicate``).
"""

from __future__ import annotations

import importlib.util
import random
import sys
from contextvars import ContextVar
from typing import Any

import numpy as np

#: Added to the master seed once per replicate index.
SEED_STRIDE = 31337
#: Seeds live in 0 .. SEED_MODULUS - 1.
SEED_MODULUS = 2**32

#: The libraries seeded in the cell running in this context (None outside a cell): the cell
#: path sets it to the cell's list, and seed functions note what they seeded in it.
CELL_SEEDED: ContextVar[list[str] | None] = ContextVar("crystallize_dist_seeded", default=None)


def derive_seed(master: int, replicate: int, auto_seed: bool = True) -> int:
    """The seed of every condition of ``replicate``: ``(master + replicate * SEED_STRIDE)``
    modulo ``SEED_MODULUS``, or ``master`` itself when ``auto_seed`` is off."""
    if not auto_seed:
        return master
    return (master + replicate * SEED_STRIDE) % SEED_MODULUS


def draw_master_seed() -> int:
    """A fresh master seed from the OS entropy pool (recorded so the run can be replayed)."""
    return random.SystemRandom().randint(0, SEED_MODULUS - 1)


def _note(*libs: str) -> None:
    seen = CELL_SEEDED.get()
    if seen is not None:
        seen.extend(lib for lib in libs if lib not in seen)


def generator_state() -> tuple[Any, ...]:
    """The state of the global ``random`` and ``numpy.random`` generators, comparable
    with ``==`` by part (see ``drawn_from``)."""
    legacy = np.random.get_state(legacy=False)
    assert isinstance(legacy, dict)
    return (
        random.getstate(),
        (legacy["state"]["pos"], legacy["has_gauss"], legacy["gauss"]),
        legacy["state"]["key"].tobytes(),
    )


def drawn_from(before: tuple[Any, ...], after: tuple[Any, ...]) -> list[str]:
    """The global generators whose state moved between ``before`` and ``after``."""
    drew = ["random"] if before[0] != after[0] else []
    if before[1:] != after[1:]:
        drew.append("numpy.random")
    return drew


def default_seed_function(seed: int) -> None:
    """Seed ``random`` with ``seed`` and numpy's global generator with ``seed % (2**32-1)``."""
    random.seed(seed)
    np.random.seed(seed % (2**32 - 1))
    _note("random", "numpy")


_FOUND: dict[str, bool] = {}


def _available(module: str) -> bool:
    if module in sys.modules:
        return True
    if module not in _FOUND:
        _FOUND[module] = importlib.util.find_spec(module) is not None
    return _FOUND[module]


def seed_everything(seed: int, deterministic: bool = False) -> list[str]:
    """Seed random, numpy and, where importable, torch (CPU and CUDA) and tensorflow.

    With ``deterministic=True`` torch also gets ``cudnn.deterministic = True``,
    ``cudnn.benchmark = False`` and ``torch.use_deterministic_algorithms(True)``.
    Returns the names of the libraries seeded (also noted in the cell's provenance).
    Usable directly as ``SeedPlugin(seed_fn=seed_everything)``.

    PYTHONHASHSEED cannot be changed inside a running interpreter; see the README.
    """
    seeded = ["random", "numpy"]
    random.seed(seed)
    np.random.seed(seed % (2**32 - 1))
    if _available("torch"):
        import torch

        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
        if deterministic:
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
            torch.use_deterministic_algorithms(True)
        seeded.append("torch")
    if _available("tensorflow"):
        import tensorflow as tf

        tf.random.set_seed(seed % (2**31))
        seeded.append("tensorflow")
    _note(*seeded)
    return seeded
