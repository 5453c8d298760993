"""Crystallize's ``crystallize.experiments.run_results`` path (an alias, no objects of its own)."""

from crystallize_dist.engine.replicates import ReplicateResult

__all__ = [
    "ReplicateResult",
]
