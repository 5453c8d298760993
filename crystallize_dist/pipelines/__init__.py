"""Crystallize's ``crystallize.pipelines`` path. (compatibility alias)."""
