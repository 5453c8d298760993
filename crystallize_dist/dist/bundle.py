"""Code bundles: how a worker gets the experiment's code.

A worker that can import the experiment reference as submitted (same path or module) uses
it directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crystallize_dist.config import Settings
from crystallize_dist.core.loading import ExperimentRef
from crystallize_dist.dist.store.base import RunStore
from crystallize_dist.errors import ExperimentLoadError


def ensure_code(
    ref: ExperimentRef, manifest: Mapping[str, Any], store: RunStore, settings: Settings
) -> ExperimentRef:
    """A reference this worker can load: the submitted one when its code is here."""
    if ref.kind in ("file", "folder") and not Path(ref.target).exists():
        raise ExperimentLoadError(
            f"{ref.target} does not exist on this worker; run the worker where the "
            "experiment's code is, or install it as a package and submit package.module:attr"
        )
    return ref


def attach_bundle(
    options: dict[str, Any],
    ref: ExperimentRef,
    store: RunStore,
    settings: Settings,
    *,
    local: bool = False,
) -> dict[str, Any]:
    """The run options, with the code bundle's address once bundles are shipped."""
    return options
