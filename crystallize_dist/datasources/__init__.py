"""Crystallize's ``crystallize.datasources`` path. (compatibility alias)."""
