"""quick_experiment: run a function over configs x replicates with seeding, no pipeline."""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from crystallize_dist.model.context import FrozenContext
from crystallize_dist.model.seeding import derive_seed


def _call(fn: Callable[..., Any], takes_ctx: bool, config: Any, ctx: FrozenContext) -> Any:
    """``fn(config, ctx)``, ``fn(config)``, ``fn(ctx)`` or ``fn()``, as ``fn`` takes them
    (a config of None is left out)."""
    args = [] if config is None else [config]
    if takes_ctx:
        args.append(ctx)
    return fn(*args)


def quick_experiment(
    fn: Callable[..., Any],
    configs: Mapping[str, Any] | None = None,
    replicates: int = 1,
    *,
    seed: int | None = None,
    verbose: bool = False,
) -> dict[str, list[Any]]:
    """``{config name: [fn(config) per replicate]}`` (Crystallize's on-ramp).

    ``fn`` takes ``(config)`` or ``(config, ctx)`` (a function with a ``ctx`` parameter or
    two parameters gets the context too); without ``configs`` it runs once per replicate
    as ``"baseline"``, called as ``fn()`` or ``fn(ctx)``. The context holds ``replicate``,
    ``condition`` and ``seed``. When ``seed`` is given, replicate i seeds ``random`` and
    numpy with ``derive_seed(seed, i)`` (see ``model/seeding.py``), and ``ctx.rng`` /
    ``ctx.random`` are seeded with it too.
    """
    params = list(inspect.signature(fn).parameters)
    takes_ctx = "ctx" in params or len(params) >= 2
    out: dict[str, list[Any]] = {}
    for name, config in (configs if configs is not None else {"baseline": None}).items():
        values = out[name] = []
        for i in range(replicates):
            rep_seed = None if seed is None else derive_seed(seed, i)
            if rep_seed is not None:
                random.seed(rep_seed)
                np.random.seed(rep_seed)
            if verbose:
                print(f"Running {name} replicate {i + 1}/{replicates}...")
            ctx = FrozenContext({"replicate": i, "condition": name, "seed": seed})
            ctx._set_seed(rep_seed)
            values.append(_call(fn, takes_ctx, config, ctx))
    if verbose:
        print("Done!")
    return out
