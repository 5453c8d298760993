"""quick_experiment: run a function over configs x replicates with seeding, no pipeline."""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from crystallize_dist.model.context import FrozenContext
from crystallize_dist.model.seeding import derive_seed


def quick_experiment(
    fn: Callable[..., Any],
    configs: Mapping[str, Mapping[str, Any]] | None = None,
    replicates: int = 1,
    *,
    seed: int | None = None,
    verbose: bool = False,
) -> dict[str, list[Any]]:
    """``{config name: [fn result per replicate]}``; when ``seed`` is given, replicate i
    seeds random and numpy with ``derive_seed(seed, i)`` (see ``model/seeding.py``)."""
    configs = configs or {"baseline": {}}
    takes_ctx = "ctx" in inspect.signature(fn).parameters
    out: dict[str, list[Any]] = {}
    for name, params in configs.items():
        values = []
        for i in range(max(1, replicates)):
            rep_seed = None if seed is None else derive_seed(seed, i)
            if rep_seed is not None:
                random.seed(rep_seed)
                np.random.seed(rep_seed % (2**32 - 1))
            ctx = FrozenContext({"replicate": i, "condition": name, "seed": rep_seed})
            ctx._set_seed(rep_seed)
            values.append(fn(ctx=ctx, **params) if takes_ctx else fn(**params))
            if verbose:
                print(f"{name} replicate {i}: {values[-1]!r}")
        out[name] = values
    return out
