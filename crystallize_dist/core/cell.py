"""run_cell: run one (condition, replicate) and return its JSON-able record.

Every executor - serial, thread, process, async, Celery - calls this and nothing else to
run experiment code. A record is a plain dict::

    {"condition": str, "replicate": int, "seed": int,
     "status": "ok" | "error",
     "metrics": {name: [values...]},          # JSON types only; {} when status is error
     "error": None | {"type", "message", "traceback", "step"?, "original"?: {"type", "message"}},
     "steps": [{"step", "params", "step_hash", "input_hash", "output_hash", "cache_hit",
                "ctx_changes": {"reads", "wrote", "metrics"}}],
     "seeded": ["random", "numpy", ...],      # libraries seed functions seeded
     "artifacts": [{"name", "step", "path"}],
     "timing": {"started": unix seconds, "duration": seconds}}

Executors add ``worker`` (host, pid, versions) and the store adds ``attempts``.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from crystallize_dist.constants import BASELINE_CONDITION, CONDITION_KEY, REPLICATE_KEY
from crystallize_dist.core.canonical import NotJSONable, to_jsonable
from crystallize_dist.core.context import FrozenContext
from crystallize_dist.core.plan import Cell
from crystallize_dist.core.seeding import CELL_SEEDED as _SEEDED
from crystallize_dist.errors import MetricValueError, PipelineExecutionError

if TYPE_CHECKING:
    from crystallize_dist.core.experiment import Experiment
    from crystallize_dist.core.plugins import StepHooks
    from crystallize_dist.core.runspec import RunSpec

STATUS_OK = "ok"
STATUS_ERROR = "error"
_UNKNOWN: Any = object()  # a condition the run has no treatment for


def describe_error(exc: BaseException) -> dict[str, Any]:
    """The JSON form of an exception raised inside a cell."""
    out: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }
    if isinstance(exc, PipelineExecutionError):
        out["step"] = exc.step_name
        orig = exc.original_exception
        out["original"] = {"type": type(orig).__name__, "message": str(orig)}
    return out


def convert_metrics(metrics: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Metric values as JSON types; a value with no JSON form raises MetricValueError.

    ``metrics`` is a finished cell's own ``ctx.metrics`` store: when every value is JSON as
    it is (floats, strings - the common case) it is taken over as it is, not copied.
    """
    for values in metrics.values():
        for v in values:
            kind = type(v)
            if kind not in _PLAIN_METRIC and (kind is not int or v.bit_length() > _MAX_INT_BITS):
                return _converted(metrics)
    return metrics


def _converted(metrics: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for key, values in metrics.items():
        try:
            out[key] = [to_jsonable(v, path=f"metric '{key}'") for v in values]
        except NotJSONable as exc:
            raise MetricValueError(
                f"metric '{key}' has a value of type {exc.value_type}, which is not "
                "JSON-serialisable; record numbers, strings, lists or dicts"
            ) from None
        for v in out[key]:
            if type(v) is int and v.bit_length() > _MAX_INT_BITS:
                raise MetricValueError(
                    f"metric '{key}' is an integer of {v.bit_length()} bits, too long to "
                    "write as JSON text (Python's limit is 4300 digits); record a float or str"
                )
    return out


#: metric values that are JSON as they are (and ints short enough to write as text)
_PLAIN_METRIC = frozenset({float, str, bool, type(None)})
_HOST = socket.gethostname()
_now, _perf = time.time, time.perf_counter
_PID = [os.getpid()]  # where cells run (records say so); kept right across fork
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))

#: ints longer than this cannot be turned into text by a default interpreter (4300 digits).
_MAX_INT_BITS = 14_000


def new_cell_context(
    experiment: Experiment, condition: str, replicate: int, seed: int
) -> FrozenContext:
    """The context a cell starts from: the setup context plus replicate and condition."""
    ctx = FrozenContext(experiment._initial_ctx)
    data = ctx._data
    data[REPLICATE_KEY] = replicate
    data[CONDITION_KEY] = condition
    ctx._seed = ctx._cell_seed = seed
    ctx._cell_artifacts = []
    return ctx


def _enter(experiment: Experiment, spec: RunSpec, ctx: FrozenContext, condition: str) -> StepHooks:
    """A cell's start: its treatment applied, then the ``before_replicate`` hooks; returns
    the plugins with per-cell hooks (worked out by the run's first cell, set up by then)."""
    hooks = spec.hooks or spec.find_hooks(experiment)
    treatment = spec.treatment_of.get(condition, _UNKNOWN)
    if treatment is not None:
        if treatment is _UNKNOWN:
            treatment = spec.treatment(condition)  # raises: the run has no such condition
        treatment.apply(ctx)
    for plugin in hooks.before_replicate:
        plugin.before_replicate(experiment, ctx)
    return hooks


def _record(
    condition: str,
    replicate: int,
    seed: int,
    status: str,
    metrics: dict[str, list[Any]],
    error: dict[str, Any] | None,
    seeded: list[str],
    steps: list[dict[str, Any]],
    ctx: FrozenContext,
    started: float,
    t0: float,
) -> dict[str, Any]:
    # step provenance stays as recorded (it may hold objects a step wrote to the context);
    # records that leave the process are converted on the way (canonical.dumps, or
    # portable_steps() for the process pool)
    return {
        "condition": condition,
        "replicate": replicate,
        "seed": seed,
        "status": status,
        "metrics": metrics,
        "error": error,
        "seeded": seeded,
        "steps": steps,
        "artifacts": ctx._cell_artifacts,
        "timing": {"started": started, "duration": _perf() - t0},
        "worker": {"host": _HOST, "pid": _PID[0]},
    }


def _run(
    experiment: Experiment,
    spec: RunSpec,
    condition: str,
    replicate: int,
    seed: int,
    *,
    data: Any = None,
    use_data: bool = False,
    raise_errors: bool = False,
    holder: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one cell of ``spec``'s run (see ``RunSpec.ready``: what every cell would
    otherwise look up again) and return its record; ``_arun`` is its async twin."""
    started = _now()
    t0 = _perf()
    seeded: list[str] = []
    token = _SEEDED.set(seeded)
    ctx = new_cell_context(experiment, condition, replicate, seed)
    steps: list[dict[str, Any]] = []
    try:
        hooks = _enter(experiment, spec, ctx, condition)
        if not use_data:
            data = experiment.datasource.fetch(ctx)
        out = experiment.pipeline._run_steps(
            data, ctx, spec.verbose, experiment, spec.planned, steps, hooks
        )
        if holder is not None:
            holder["data"] = out
        status, error, metrics = STATUS_OK, None, convert_metrics(ctx.metrics._values)
    except Exception as exc:
        if raise_errors:
            raise
        status, error, metrics, steps = STATUS_ERROR, describe_error(exc), {}, []
    finally:
        _SEEDED.reset(token)
    return _record(
        condition, replicate, seed, status, metrics, error, seeded, steps, ctx, started, t0
    )


async def _arun(
    experiment: Experiment, spec: RunSpec, condition: str, replicate: int, seed: int
) -> dict[str, Any]:
    """Async twin of ``_run``: async steps are awaited on the running loop."""
    started = _now()
    t0 = _perf()
    seeded: list[str] = []
    token = _SEEDED.set(seeded)
    ctx = new_cell_context(experiment, condition, replicate, seed)
    steps: list[dict[str, Any]] = []
    try:
        hooks = _enter(experiment, spec, ctx, condition)
        data = experiment.datasource.fetch(ctx)
        await experiment.pipeline._arun_steps(
            data, ctx, spec.verbose, experiment, spec.planned, steps, hooks
        )
        status, error, metrics = STATUS_OK, None, convert_metrics(ctx.metrics._values)
    except Exception as exc:
        status, error, metrics, steps = STATUS_ERROR, describe_error(exc), {}, []
    finally:
        _SEEDED.reset(token)
    return _record(
        condition, replicate, seed, status, metrics, error, seeded, steps, ctx, started, t0
    )


def portable_steps(steps: list[dict[str, Any]]) -> list[Any]:
    """A cell's step provenance in plain JSON types (safe to pickle or send)."""
    return to_jsonable(steps, strict=False)


def run_cell(experiment: Experiment, cell: Cell) -> dict[str, Any]:
    """Run one cell synchronously (async steps run on a private loop); never raises for
    experiment code - failures become ``status: "error"`` records."""
    return _run(experiment, experiment._cell_spec(), cell.condition, cell.replicate, cell.seed)


async def arun_cell(experiment: Experiment, cell: Cell) -> dict[str, Any]:
    """Async twin of :func:`run_cell`: async steps are awaited on the running loop."""
    spec = experiment._cell_spec()
    return await _arun(experiment, spec, cell.condition, cell.replicate, cell.seed)


def replicate_records(
    experiment: Experiment, spec: RunSpec, replicate: int, seed: int
) -> list[dict[str, Any]]:
    """Run the cells of one replicate of ``spec``'s plan in order (baseline first); a failed
    baseline skips the rest, as in Crystallize."""
    records = []
    for condition in spec.runs:
        rec = _run(experiment, spec, condition, replicate, seed)
        records.append(rec)
        if rec["status"] != STATUS_OK and condition == BASELINE_CONDITION:
            break
    return records


async def areplicate_records(
    experiment: Experiment, spec: RunSpec, replicate: int, seed: int
) -> list[dict[str, Any]]:
    """Async twin of :func:`replicate_records`."""
    records = []
    for condition in spec.runs:
        rec = await _arun(experiment, spec, condition, replicate, seed)
        records.append(rec)
        if rec["status"] != STATUS_OK and condition == BASELINE_CONDITION:
            break
    return records
