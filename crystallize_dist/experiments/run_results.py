"""Crystallize's ``crystallize.experiments.run_results`` path. (compatibility alias)."""

from crystallize_dist.core.execution import ReplicateResult

__all__ = [
    "ReplicateResult",
]
