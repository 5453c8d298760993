"""Crystallize's ``crystallize.utils.decorators`` path. (compatibility alias)."""

from crystallize_dist.core.decorators import (
    ResourceFactoryWrapper,
    data_source,
    hypothesis,
    inject_from_ctx,
    pipeline,
    pipeline_step,
    resource_factory,
    treatment,
    verifier,
)

__all__ = [
    "ResourceFactoryWrapper",
    "data_source",
    "hypothesis",
    "inject_from_ctx",
    "pipeline",
    "pipeline_step",
    "resource_factory",
    "treatment",
    "verifier",
]
