"""Crystallize's ``crystallize.experiments.run_results`` path. (compatibility alias)."""

from crystallize_dist.engine.replicates import ReplicateResult

__all__ = [
    "ReplicateResult",
]
