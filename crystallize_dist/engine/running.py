"""Running an experiment: the engine's entry point from the model.

``Experiment.run`` / ``arun`` / ``apply`` / ``fingerprint`` call the functions here. A run is
plan (``resolve``: seeds fixed) -> cells (the executor calls ``replicate_fn`` per replicate)
-> aggregate, around Crystallize's hooks: ``before_run`` on every plugin, every step's
``setup``; the cells; every step's ``teardown`` (also on failure); ``after_run`` with the
Result.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.engine.aggregate import Aggregator, aggregate_into
from crystallize_dist.engine.cell import execute_for_apply
from crystallize_dist.engine.environment import host_environment
from crystallize_dist.engine.executors import SerialExecution
from crystallize_dist.engine.fingerprint import fingerprint_parts
from crystallize_dist.engine.plan import Cell
from crystallize_dist.engine.replicates import ReplicateRunner, flatten_results
from crystallize_dist.engine.runspec import Runnable, RunSpec, resolve
from crystallize_dist.errors import InvalidOptionError
from crystallize_dist.model.awaiting import Drive, drive_async, drive_sync
from crystallize_dist.model.hypothesis import verify_hypotheses
from crystallize_dist.model.options import check_seed
from crystallize_dist.model.plugins import BasePlugin, overrides_loop
from crystallize_dist.model.result import ExperimentMetrics, Result, TreatmentMetrics

if TYPE_CHECKING:
    from crystallize_dist.model.hypothesis import Hypothesis
    from crystallize_dist.model.treatment import Treatment


def executor_of(experiment: Runnable) -> BasePlugin:
    """The plugin that runs the replicates: the last one overriding ``run_experiment_loop``,
    else a SerialExecution."""
    for plugin in reversed(experiment.plugins):
        if overrides_loop(plugin):
            return plugin
    return SerialExecution()


@contextmanager
def set_up(experiment: Runnable) -> Iterator[None]:
    """Around a run's cells: every plugin's ``before_run``, then every step's ``setup``;
    every step's ``teardown`` after them, whatever happened (also when a ``setup``
    failed, as in Crystallize)."""
    for plugin in experiment.plugins:
        plugin.before_run(experiment)
    try:
        for step in experiment.pipeline.steps:
            step.setup(experiment.setup_ctx)
        yield
    finally:
        for step in experiment.pipeline.steps:
            step.teardown(experiment.setup_ctx)


def provenance_meta(experiment: Runnable) -> dict[str, Any]:
    """What a result's provenance says of the experiment and of the machine it ran on."""
    return {
        "pipeline_signature": experiment.pipeline.signature(),
        "experiment": experiment.name,
        "fingerprint": fingerprint(experiment),
        "environment": host_environment(),
    }


def fingerprint(experiment: Runnable) -> str:
    """The experiment's fingerprint (see ``engine/fingerprint.py``), of its treatments as
    defined, also while a run of only some of them is going on."""
    return fingerprint_parts(
        experiment.datasource, experiment.pipeline, experiment.defined_treatments
    )


def loaded_result(spec: RunSpec, signature: str) -> Result:
    """The Result of a resumed run that found every condition done: the stored metrics,
    hypotheses verified on them, no seeds (nothing ran)."""
    baseline = spec.loaded.get(BASELINE_CONDITION, {})
    treatments = {t.name: TreatmentMetrics(spec.loaded.get(t.name, {})) for t in spec.treatments}
    hyps = verify_hypotheses(spec.hypotheses, baseline, treatments)
    return Result(
        ExperimentMetrics(TreatmentMetrics(baseline), treatments, hyps),
        provenance={
            "replicates": spec.plan.replicates,
            "seeds": {},
            "pipeline_signature": signature,
        },
    )


def _run(experiment: Runnable, **options: Any) -> Drive:
    """The run as a generator that yields what must be awaited (an async executor's loop),
    so ``run`` and ``arun`` share it."""
    spec = resolve(experiment, **options)
    experiment.assign_id()
    if spec.plan.n_cells == 0:  # resume found every condition done
        return loaded_result(spec, experiment.pipeline.signature())
    with experiment.running(
        treatments=spec.treatments,
        hypotheses=spec.hypotheses,
        replicates=spec.plan.replicates,
        seed=spec.plan.master_seed,
    ):
        with set_up(experiment):
            executor = executor_of(experiment)
            out = executor.run_experiment_loop(experiment, ReplicateRunner(spec))
            if inspect.isawaitable(out):
                out = yield out
            meta = provenance_meta(experiment)
            run_meta = getattr(executor, "run_meta", None)
            if callable(run_meta):  # e.g. CeleryExecution adds its run id
                meta.update(run_meta())
            if not isinstance(out, Aggregator):  # records (an executor's own loop)
                out = aggregate_into(spec.plan, flatten_results(out))
            result = out.result(hypotheses=spec.hypotheses, meta=meta, loaded=spec.loaded)
            spec.warn(result.provenance.get("warnings", []))  # those of cells run elsewhere
        for plugin in experiment.plugins:
            plugin.after_run(experiment, result)
    return result


def run(
    experiment: Runnable,
    *,
    treatments: Sequence[Treatment] | None = None,
    hypotheses: Sequence[Hypothesis] | None = None,
    replicates: int | None = None,
    strategy: str | None = None,
    seed: int | None = None,
) -> Result:
    """Run every cell of ``experiment`` and return the aggregated Result (see the module
    docstring); async steps run on a private event loop."""
    result: Result = drive_sync(
        _run(
            experiment,
            treatments=treatments,
            hypotheses=hypotheses,
            replicates=replicates,
            strategy=strategy,
            seed=seed,
        )
    )
    return result


async def arun(
    experiment: Runnable,
    *,
    treatments: Sequence[Treatment] | None = None,
    hypotheses: Sequence[Hypothesis] | None = None,
    replicates: int | None = None,
    strategy: str | None = None,
    seed: int | None = None,
) -> Result:
    """Async twin of ``run``: async steps and AsyncExecution use the running loop."""
    result: Result = await drive_async(
        _run(
            experiment,
            treatments=treatments,
            hypotheses=hypotheses,
            replicates=replicates,
            strategy=strategy,
            seed=seed,
        )
    )
    return result


def apply(
    experiment: Runnable, treatment: Treatment | str | None, *, data: Any, seed: int | None
) -> Any:
    """``Experiment.apply``: one cell (replicate 0 of ``treatment``'s condition) on the same
    cell path as a run, its hooks called as for a one-cell run; returns the final data.
    ``data`` replaces the datasource; ``seed`` goes to the seed function as it is; a
    failing step raises its own exception."""
    if isinstance(treatment, str):
        match = [t for t in experiment.treatments if t.name == treatment]
        if not match and treatment != BASELINE_CONDITION:
            known = [t.name for t in experiment.treatments]
            raise InvalidOptionError(f"unknown treatment '{treatment}'; known: {known}")
        treatment = match[0] if match else None
    spec = resolve(
        experiment,
        treatments=[treatment] if treatment is not None else [],
        hypotheses=[],
        replicates=1,
        seed=seed,
    )
    condition = treatment.name if treatment is not None else BASELINE_CONDITION
    cell = Cell(condition, 0, check_seed(seed, "seed") if seed is not None else spec.plan.seed(0))
    experiment.assign_id()
    with experiment.running(
        treatments=spec.treatments,
        hypotheses=[],
        replicates=1,
        seed=spec.plan.master_seed,
    ):
        try:
            with set_up(experiment):
                final, record = execute_for_apply(spec, cell, data=data)
        except Exception as exc:
            original = getattr(exc, "original_exception", None)
            if isinstance(original, BaseException):
                raise original from exc
            raise
        result = aggregate_into(spec.plan, [record]).result(meta={"apply": True})
        for plugin in experiment.plugins:
            plugin.after_run(experiment, result)
    return final
