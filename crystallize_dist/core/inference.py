"""``Experiment.apply``: one pass of the pipeline for inference, on the same cell path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.core.aggregate import aggregate
from crystallize_dist.core.cell import _run
from crystallize_dist.core.seeding import check_seed
from crystallize_dist.errors import InvalidOptionError

if TYPE_CHECKING:
    from crystallize_dist.core.experiment import Experiment
    from crystallize_dist.core.treatment import Treatment


def apply_once(
    experiment: Experiment, treatment: Treatment | str | None, *, data: Any, seed: int | None
) -> Any:
    """See ``Experiment.apply``: hooks run as for a one-cell run; the final data returns."""
    experiment._auto_validate()
    if isinstance(treatment, str):
        match = [t for t in experiment._treatments if t.name == treatment]
        if not match and treatment != BASELINE_CONDITION:
            known = [t.name for t in experiment._treatments]
            raise InvalidOptionError(f"unknown treatment '{treatment}'; known: {known}")
        treatment = match[0] if match else None
    spec = experiment.resolve(
        treatments=[treatment] if treatment is not None else [],
        hypotheses=[],
        replicates=1,
        seed=None if seed is None else seed,
    )
    if treatment is not None and treatment.name != BASELINE_CONDITION:
        condition = treatment.name
    else:
        condition = BASELINE_CONDITION
    cell_seed = check_seed(seed, "seed") if seed is not None else spec.plan.seed(0)
    experiment._assign_id()
    holder: dict[str, Any] = {}
    with experiment._running(spec):
        try:
            with experiment._set_up():
                record = _run(
                    experiment,
                    spec,
                    condition,
                    0,
                    cell_seed,
                    data=data,
                    use_data=data is not None,
                    raise_errors=True,
                    holder=holder,
                )
        except Exception as exc:
            original = getattr(exc, "original_exception", None)
            if isinstance(original, BaseException):
                raise original from exc
            raise
        result = aggregate(spec.plan, [record], meta={"apply": True})
        for plugin in experiment.plugins:
            plugin.after_run(experiment, result)
    return holder.get("data")
