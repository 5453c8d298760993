"""Data sources of the folder experiment (the names config.yaml refers to)."""

from __future__ import annotations

import numpy as np

from crystallize_dist import FrozenContext, data_source


@data_source
def measurements(ctx: FrozenContext, n: int = 64, noise: float = 1.0) -> np.ndarray:
    """``n`` noisy readings of a true value of 10, drawn from the cell's own generator."""
    return 10.0 + ctx.rng.normal(0.0, noise, size=n)
