"""Pipeline steps of the folder experiment (the names config.yaml refers to)."""

from __future__ import annotations

from typing import Any

import numpy as np

from crystallize_dist import FrozenContext, pipeline_step


@pipeline_step()
def calibrate(data: np.ndarray, ctx: FrozenContext, offset: float = 0.0) -> np.ndarray:
    """Add the calibration ``offset`` (a treatment sets it through the context)."""
    return data + offset


@pipeline_step()
def summarize(
    data: np.ndarray, ctx: FrozenContext, clip: float = 3.0
) -> tuple[np.ndarray, dict[str, Any]]:
    """Record the mean and spread of the readings within ``clip`` standard deviations."""
    centre, spread = float(np.median(data)), float(np.std(data))
    kept = data[np.abs(data - centre) <= clip * spread]
    return kept, {"mean": float(np.mean(kept)), "std": float(np.std(kept, ddof=1))}
