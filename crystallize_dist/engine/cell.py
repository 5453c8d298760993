"""The cell path: run one (condition, replicate) and return its record (see ``records.py``).

Every executor - serial, thread, process, async, Celery - runs experiment code only through
``execute_cell`` (or its async twin, or ``replicate_records``)."""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING, Any

from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.engine.records import (
    STATUS_ERROR,
    STATUS_OK,
    convert_metrics,
    describe_error,
)
from crystallize_dist.engine.runspec import Runnable, RunSpec, resolve
from crystallize_dist.model.context import FrozenContext
from crystallize_dist.model.first_replicate import CHECKED_REPLICATE, CheckedContext
from crystallize_dist.model.seeding import CELL_SEEDED as _SEEDED
from crystallize_dist.model.step_loop import arun_steps, run_steps

if TYPE_CHECKING:
    from crystallize_dist.engine.plan import Cell
    from crystallize_dist.model.plugins import StepHooks

_UNKNOWN: Any = object()  # a condition the run has no treatment for
_HOST = socket.gethostname()
_now, _perf = time.time, time.perf_counter
_PID = [os.getpid()]  # where cells run (records say so); kept right across fork
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


class _Cell:
    """One cell being run: what ``_run`` and its async twin ``_arun`` share. Its context
    starts from the run's initial context; the libraries seed functions seed are noted while
    it runs (``CELL_SEEDED``); ``ok`` and ``failed`` make its record."""

    __slots__ = (
        "checked",
        "condition",
        "ctx",
        "replicate",
        "seed",
        "seeded",
        "spec",
        "started",
        "steps",
        "t0",
        "token",
    )  # fmt: skip

    def __init__(self, spec: RunSpec, condition: str, replicate: int, seed: int) -> None:
        self.spec = spec
        self.condition = condition
        self.replicate = replicate
        self.seed = seed
        self.started = _now()
        self.t0 = _perf()
        self.seeded: list[str] = []
        self.token = _SEEDED.set(self.seeded)
        self.checked = replicate == CHECKED_REPLICATE
        self.ctx = (CheckedContext if self.checked else FrozenContext).for_cell(
            spec.initial, replicate=replicate, condition=condition, seed=seed
        )
        self.steps: list[dict[str, Any]] = []

    def begin(self, data: Any, use_data: bool) -> tuple[StepHooks, Any]:
        """The cell's start: its treatment applied, the ``before_replicate`` hooks called;
        returns the plugins with step hooks and the data the steps start from (fetched
        unless given)."""
        spec, ctx = self.spec, self.ctx
        hooks = spec.hooks or spec.find_hooks()  # after before_run: the first cell finds them
        treatment = spec.treatment_of.get(self.condition, _UNKNOWN)
        if treatment is not None:
            if treatment is _UNKNOWN:
                treatment = spec.treatment(self.condition)  # raises: no such condition here
            if self.checked:
                assert isinstance(ctx, CheckedContext)
                keys = ctx.keys()
                treatment.apply(ctx)
                ctx.treated(keys)
            else:
                treatment.apply(ctx)
        experiment = spec.experiment
        for plugin in hooks.before_replicate:
            plugin.before_replicate(experiment, ctx)
        if self.checked:
            assert isinstance(ctx, CheckedContext)
            ctx.watch()
        if not use_data:
            data = experiment.datasource.fetch(ctx)
        return hooks, data

    def ok(self) -> dict[str, Any]:
        """The record of a cell that ran; a first-replicate cell's checks add their warning
        lines (or, with ``strict_params``, raise: see ``model/first_replicate.py``)."""
        warnings = None
        if self.checked:
            ctx, spec = self.ctx, self.spec
            assert isinstance(ctx, CheckedContext)
            warnings = ctx.findings(spec.experiment, self.condition, strict=spec.strict_params)
        metrics = convert_metrics(self.ctx.metrics.lists)
        record = self._record(STATUS_OK, metrics, None, self.steps)
        if warnings:
            record["warnings"] = warnings
            self.spec.warn(warnings)
        return record

    def failed(self, exc: Exception) -> dict[str, Any]:
        return self._record(STATUS_ERROR, {}, describe_error(exc), [])

    def _record(
        self,
        status: str,
        metrics: dict[str, list[Any]],
        error: dict[str, Any] | None,
        steps: list[dict[str, Any]],
    ) -> dict[str, Any]:
        # step provenance stays as recorded (it may hold objects a step wrote to the
        # context); records that leave the process are converted on the way
        # (canonical.dumps, or portable_steps() for the process pool)
        return {
            "condition": self.condition,
            "replicate": self.replicate,
            "seed": self.seed,
            "status": status,
            "metrics": metrics,
            "error": error,
            "seeded": self.seeded,
            "steps": steps,
            "artifacts": self.ctx.cell_artifacts or [],
            "timing": {"started": self.started, "duration": _perf() - self.t0},
            "worker": {"host": _HOST, "pid": _PID[0]},
        }


def _run(
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
    """Run one cell of ``spec``'s run and return its record; ``_arun`` is its async twin.
    ``data`` (with ``use_data``) replaces the datasource; ``raise_errors`` lets a failure
    propagate instead of becoming an error record; ``holder["data"]`` gets the final data."""
    cell = _Cell(spec, condition, replicate, seed)
    try:
        hooks, data = cell.begin(data, use_data)
        out = run_steps(
            data, cell.ctx, spec.planned, spec.verbose, spec.experiment, cell.steps, hooks
        )
        spec.experiment.pipeline.keep_provenance(cell.steps)
        if holder is not None:
            holder["data"] = out[0]
        return cell.ok()
    except Exception as exc:
        if raise_errors:
            raise
        return cell.failed(exc)
    finally:
        _SEEDED.reset(cell.token)


async def _arun(spec: RunSpec, condition: str, replicate: int, seed: int) -> dict[str, Any]:
    """Async twin of ``_run``: async steps are awaited on the running loop."""
    cell = _Cell(spec, condition, replicate, seed)
    try:
        hooks, data = cell.begin(None, False)
        await arun_steps(
            data, cell.ctx, spec.planned, spec.verbose, spec.experiment, cell.steps, hooks
        )
        spec.experiment.pipeline.keep_provenance(cell.steps)
        return cell.ok()
    except Exception as exc:
        return cell.failed(exc)
    finally:
        _SEEDED.reset(cell.token)


def execute_cell(spec: RunSpec, cell: Cell) -> dict[str, Any]:
    """Run one cell of ``spec``'s run and return its record; never raises for experiment
    code: failures become ``status: "error"`` records. Every executor calls this (or its
    async twin, or ``replicate_records``)."""
    return _run(spec, cell.condition, cell.replicate, cell.seed)


async def aexecute_cell(spec: RunSpec, cell: Cell) -> dict[str, Any]:
    """Async twin of :func:`execute_cell`: async steps are awaited on the running loop."""
    return await _arun(spec, cell.condition, cell.replicate, cell.seed)


def execute_for_apply(spec: RunSpec, cell: Cell, *, data: Any) -> tuple[Any, dict[str, Any]]:
    """``Experiment.apply``'s cell: ``data`` (when not None) replaces the datasource, a
    failure propagates; returns the final data and the cell's record."""
    holder: dict[str, Any] = {}
    record = _run(
        spec,
        cell.condition,
        cell.replicate,
        cell.seed,
        data=data,
        use_data=data is not None,
        raise_errors=True,
        holder=holder,
    )
    return holder.get("data"), record


def run_cell(experiment: Runnable, cell: Cell) -> dict[str, Any]:
    """Run one cell of ``experiment`` as it is (its own treatments) synchronously (async
    steps run on a private loop); see :func:`execute_cell`."""
    return execute_cell(resolve(experiment, hypotheses=[], strategy="rerun"), cell)


async def arun_cell(experiment: Runnable, cell: Cell) -> dict[str, Any]:
    """Async twin of :func:`run_cell`: async steps are awaited on the running loop."""
    return await aexecute_cell(resolve(experiment, hypotheses=[], strategy="rerun"), cell)


def replicate_records(spec: RunSpec, replicate: int, seed: int) -> list[dict[str, Any]]:
    """Run the cells of one replicate of ``spec``'s plan in order (baseline first); a failed
    baseline skips the rest, as in Crystallize."""
    records = []
    for condition in spec.runs:
        rec = _run(spec, condition, replicate, seed)
        records.append(rec)
        if rec["status"] != STATUS_OK and condition == BASELINE_CONDITION:
            break
    return records


async def areplicate_records(spec: RunSpec, replicate: int, seed: int) -> list[dict[str, Any]]:
    """Async twin of :func:`replicate_records`."""
    records = []
    for condition in spec.runs:
        rec = await _arun(spec, condition, replicate, seed)
        records.append(rec)
        if rec["status"] != STATUS_OK and condition == BASELINE_CONDITION:
            break
    return records
