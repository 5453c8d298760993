"""Checks of run options a user passes (replicates, seeds), each a one-line error."""

from __future__ import annotations

from typing import Any

import numpy as np

from crystallize_dist.errors import InvalidOptionError
from crystallize_dist.model.seeding import SEED_MODULUS


def check_replicates(value: Any, where: str = "replicates") -> int:
    """``value`` as an int, or InvalidOptionError (also a TypeError) naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOptionError(
            f"{where} must be an integer, got {type(value).__name__} {value!r}"
        )
    return value


def check_seed(seed: Any, where: str = "seed") -> int:
    """``seed`` as an int in 0..2**32-1, or InvalidOptionError naming ``where``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InvalidOptionError(f"{where} must be an integer in 0..2**32-1, got {seed!r}")
    if not 0 <= int(seed) < SEED_MODULUS:
        raise InvalidOptionError(f"{where} must be in 0..2**32-1, got {seed}")
    return int(seed)
