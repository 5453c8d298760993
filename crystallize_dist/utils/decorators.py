"""Crystallize's ``crystallize.utils.decorators`` path. (compatibility alias)."""

from crystallize_dist.model.decorators import (
    data_source,
    hypothesis,
    pipeline,
    pipeline_step,
    treatment,
    verifier,
)
from crystallize_dist.model.injection import (
    ResourceFactoryWrapper,
    inject_from_ctx,
    resource_factory,
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
