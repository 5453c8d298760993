"""Crystallize's ``crystallize.experiments`` path. (compatibility alias)."""
