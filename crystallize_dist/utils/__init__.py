"""Crystallize's ``crystallize.utils`` path. (compatibility alias)."""
