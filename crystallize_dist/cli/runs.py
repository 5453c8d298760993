"""Verbs that run cells: ``submit``, ``resume`` and ``replay``."""

from __future__ import annotations

import json
import sys

import click

from crystallize_dist.cli import options as opt
from crystallize_dist.cli.options import ENV, store_options
from crystallize_dist.cli.waiting import wait_and_show
from crystallize_dist.distributed import coordinator
from crystallize_dist.distributed.calibrate import auto_cells_per_task, parse_cells_per_task
from crystallize_dist.distributed.run_list import labels
from crystallize_dist.distributed.store.eviction import check_eviction
from crystallize_dist.distributed.worker import reexec_with_hashseed
from crystallize_dist.engine.plan import RunPlan
from crystallize_dist.errors import InvalidOptionError


@click.command()
@click.argument("experiment")
@click.option(
    "--replicates",
    "-r",
    type=int,
    envvar=ENV + "REPLICATES",
    help="Replicates per condition [CRYSTALLIZE_DIST_REPLICATES].",
)
@click.option(
    "--treatment", "-t", "treatments", multiple=True, help="Run only this treatment (repeatable)."
)
@click.option(
    "--seed", type=int, envvar=ENV + "SEED", help="Master seed, 0..2**32-1 [CRYSTALLIZE_DIST_SEED]."
)
@store_options
@click.option("--wait", is_flag=True, help="Wait for the run, then print its summary.")
@click.option(
    "--workers",
    "-w",
    type=int,
    envvar=ENV + "WORKERS",
    help="Local worker processes with --local [CRYSTALLIZE_DIST_WORKERS].",
)
@click.option(
    "--cells-per-task",
    default="1",
    envvar=ENV + "CELLS_PER_TASK",
    help="Cells per task message, or 'auto' [CRYSTALLIZE_DIST_CELLS_PER_TASK].",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    envvar=ENV + "FORMAT",
    help="table, or json: stdout is one JSON document (the result with --wait or --local, "
    "else the run id); the run id line goes to stderr.",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds to wait with --wait."
)
@click.option(
    "--drift-policy",
    type=click.Choice(["warn", "refuse"]),
    envvar=ENV + "DRIFT_POLICY",
    help="Workers with other versions: warn or refuse.",
)
@click.option(
    "--strict-params",
    is_flag=True,
    default=None,
    envvar=ENV + "STRICT_PARAMS",
    help="A treatment parameter no step read fails its cell [CRYSTALLIZE_DIST_STRICT_PARAMS].",
)
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
@click.option("--name", "run_name", help="A name for the run (list --name finds it).")
@click.option(
    "--canary",
    type=float,
    metavar="FRACTION",
    help="Run this fraction of the cells (seeded sample) again in another process and "
    "compare: a mismatch shows in status and the result, and --wait exits 3.",
)
@click.option(
    "--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag of the run (repeatable)."
)
def submit(
    experiment: str,
    replicates: int | None,
    treatments: tuple[str, ...],
    seed: int | None,
    broker: str | None,
    local: bool,
    wait: bool,
    workers: int | None,
    cells_per_task: str,
    fmt: str,
    timeout: float | None,
    drift_policy: str | None,
    strict_params: bool | None,
    progress: bool,
    run_name: str | None,
    tags: tuple[str, ...],
    canary: float | None,
) -> None:
    """Submit EXPERIMENT (package.module:attr, file.py[:attr] or a config folder).

    Prints the run id on the first line of stdout (with --format json: on stderr, as
    "run RUN_ID", and inside the JSON document on stdout).
    """
    if local:  # the cells run here: with the hash seed the workers use
        reexec_with_hashseed()
    settings = opt.settings(broker, drift_policy=drift_policy, strict_params=strict_params)
    extra = labels(run_name, tags)
    if canary is not None:
        extra["canary"] = canary
    per_task = parse_cells_per_task(cells_per_task)
    if workers is not None and workers < 1:
        raise InvalidOptionError(f"--workers must be >= 1, got {workers}")
    store = opt.store(settings, local)
    opt.warn(check_eviction(store, settings))
    if per_task == "auto":
        per_task = auto_cells_per_task(
            experiment, replicates=replicates, treatments=len(set(treatments)) or None
        )
    sub = coordinator.submit(
        experiment,
        settings=settings,
        store=store,
        treatments=list(treatments) or None,
        replicates=replicates,
        seed=seed,
        cells_per_task=int(per_task),
        local=local,
        workers=workers,
        extra_options=extra,
    )
    waits = local or wait
    if fmt == "json":  # stdout is one JSON document (the run id is inside it)
        click.echo(f"run {sub.run_id}", err=True)
        if not waits:
            click.echo(json.dumps({"run_id": sub.run_id, "cells": sub.manifest["n_cells"]}))
    else:
        click.echo(sub.run_id)
        sys.stdout.flush()
    if waits:
        wait_and_show(
            store,
            settings,
            sub.run_id,
            local=local,
            fmt=fmt,
            timeout=timeout,
            progress=progress,
            run_here=list(RunPlan.from_dict(sub.manifest["plan"]).cells()) if local else None,
            workers=workers,
            cells_per_task=None if int(per_task) == 1 else int(per_task),
            submitted=sub,
        )


@click.command()
@click.argument("run_id")
@store_options
@click.option("--retry-failed", is_flag=True, help="Also re-run cells that failed.")
@click.option(
    "--allow-drift",
    is_flag=True,
    help="Resume even if the experiment's code changed (stamped on the result).",
)
@click.option("--workers", "-w", type=click.IntRange(min=1), envvar=ENV + "WORKERS")
@click.option("--wait", is_flag=True, help="Wait until every cell has a record.")
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds to wait with --wait."
)
def resume(
    run_id: str,
    broker: str | None,
    local: bool,
    retry_failed: bool,
    allow_drift: bool,
    workers: int | None,
    wait: bool,
    timeout: float | None,
) -> None:
    """Re-enqueue cells without a record, with their original seeds."""
    from crystallize_dist.distributed.waiting import wait_for

    if local:  # the cells run here: with the hash seed the workers use
        reexec_with_hashseed()
    settings = opt.settings(broker)
    store = opt.store(settings, local)
    todo = coordinator.resume(
        run_id,
        settings=settings,
        store=store,
        retry_failed=retry_failed,
        allow_drift=allow_drift,
        local=local,
    )
    click.echo(f"resumed {run_id}: {len(todo)} cells re-enqueued")
    if local and todo:
        from crystallize_dist.distributed.local import run_local
        from crystallize_dist.distributed.store import SQLiteStore

        assert isinstance(store, SQLiteStore)
        run_local(run_id, todo, store=store, settings=settings, workers=workers)
    elif wait:
        wait_for(
            store,
            run_id,
            timeout=timeout,
            settings=None if local else settings,
            say=lambda line: click.echo(line, err=True),
        )


@click.command()
@click.argument("run_id")
@store_options
@click.option(
    "--cells", "count", type=int, help="Replay the first K recorded cells (canonical order)."
)
@click.option("--all", "every", is_flag=True, help="Replay every recorded cell (the default).")
def replay(run_id: str, broker: str | None, local: bool, count: int | None, every: bool) -> None:
    """Re-run recorded cells here with the run's seeds and compare their metrics digests.

    Prints one line per mismatch and "N matches, M mismatches"; exit code 1 on a mismatch.
    """
    from crystallize_dist.distributed.replay import replay_run

    if every and count is not None:
        raise InvalidOptionError("--cells and --all exclude each other")
    reexec_with_hashseed()  # cells run here as they ran on the workers
    settings = opt.settings(broker)
    store = opt.store(settings, local, reading=run_id)
    report = replay_run(run_id, store=store, settings=settings, cells=count)
    for line in report.lines():
        click.echo(line)
    report.check()
