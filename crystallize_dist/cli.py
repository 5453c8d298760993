"""``crystallize-dist``: submit runs, start workers, read status and results.

Each option can also be set with the ``CRYSTALLIZE_DIST_*`` variable named in its help. The
commands parse, call the library and print; errors are one line on stderr, exit code 1.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
from rich.console import Console

from crystallize_dist.config import Settings
from crystallize_dist.distributed.calibrate import parse_cells_per_task
from crystallize_dist.distributed.report import write_result
from crystallize_dist.distributed.worker import reexec_with_hashseed
from crystallize_dist.errors import (
    CrystallizeError,
    InvalidOptionError,
)

ENV = "CRYSTALLIZE_DIST_"


class _Group(click.Group):
    """Turns our exceptions into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (CrystallizeError, OSError) as exc:
            # OSError: an output file that cannot be written, a home that cannot be made...
            message = " ".join(str(exc).split())
            if isinstance(exc, OSError) and not isinstance(exc, CrystallizeError):
                message = f"{exc.strerror or type(exc).__name__}: {exc.filename or message}"
            click.echo(f"error: {message}", err=True)
            ctx.exit(1)


def _settings(broker: str | None = None, **overrides: Any) -> Settings:
    return Settings.from_env(broker_url=broker, **overrides)


def _store(
    settings: Settings, local: bool, *, check: bool = True, reading: str | None = None
) -> Any:
    from crystallize_dist.distributed.store import command_store

    return command_store(settings, local, ping=check, reading=reading)


def _out() -> Console:
    return Console(soft_wrap=True)


def _err() -> Console:
    return Console(stderr=True)


def store_options(fn: Any) -> Any:
    fn = click.option(
        "--broker",
        metavar="URL",
        envvar=ENV + "BROKER_URL",
        help="Redis URL of broker and store [CRYSTALLIZE_DIST_BROKER_URL].",
    )(fn)
    return click.option(
        "--local",
        is_flag=True,
        envvar=ENV + "LOCAL",
        help="Use the embedded SQLite store [CRYSTALLIZE_DIST_LOCAL].",
    )(fn)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="crystallize-dist")
def main() -> None:
    """Run Crystallize-style experiments anywhere, with the same result bytes."""


@main.command()
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
    help="Summary format after --wait.",
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
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
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
    progress: bool,
) -> None:
    """Submit EXPERIMENT (package.module:attr, file.py[:attr] or a config folder).

    Prints the run id on the first line of stdout.
    """
    from crystallize_dist.distributed import coordinator

    if local:  # the cells run here: with the hash seed the workers use
        reexec_with_hashseed()
    settings = _settings(broker, drift_policy=drift_policy)
    per_task = parse_cells_per_task(cells_per_task)
    if workers is not None and workers < 1:
        raise InvalidOptionError(f"--workers must be >= 1, got {workers}")
    store = _store(settings, local)
    if per_task == "auto":
        from crystallize_dist.distributed.calibrate import auto_cells_per_task

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
    )
    click.echo(sub.run_id)
    sys.stdout.flush()
    if local or wait:
        from crystallize_dist.distributed.local import finished_result

        write_result(
            finished_result(
                sub,
                store,
                settings,
                local=local,
                workers=workers,
                cells_per_task=int(per_task),
                timeout=timeout,
                progress=progress,
            ),
            fmt,
        )


@main.command()
@click.option(
    "--broker",
    metavar="URL",
    envvar=ENV + "BROKER_URL",
    help="Redis URL [CRYSTALLIZE_DIST_BROKER_URL].",
)
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    envvar=ENV + "CONCURRENCY",
    help="Pool processes / threads [CRYSTALLIZE_DIST_CONCURRENCY].",
)
@click.option(
    "--pool",
    "-P",
    type=click.Choice(["prefork", "threads", "solo"]),
    default="prefork",
    envvar=ENV + "POOL",
    help="Pool kind [CRYSTALLIZE_DIST_POOL].",
)
@click.option("--queue", "-Q", envvar=ENV + "QUEUE", help="Queue [CRYSTALLIZE_DIST_QUEUE].")
@click.option(
    "--hostname",
    "-n",
    envvar=ENV + "HOSTNAME",
    help="Worker node name [CRYSTALLIZE_DIST_HOSTNAME].",
)
@click.option("--loglevel", "-l", default="INFO", envvar=ENV + "LOGLEVEL")
def worker(
    broker: str | None,
    concurrency: int | None,
    pool: str,
    queue: str | None,
    hostname: str | None,
    loglevel: str,
) -> None:
    """Start a Celery worker that runs cells."""
    from crystallize_dist.distributed.worker import start_worker

    start_worker(
        _settings(broker, queue=queue),
        concurrency=concurrency,
        pool=pool,
        hostname=hostname,
        loglevel=loglevel,
    )


@main.command()
@click.argument("run_id")
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--lost/--no-lost",
    default=None,
    help="Look for pending cells with no task message left in the broker "
    "(default: when the queue holds at most 20,000 messages).",
)
def status(run_id: str, broker: str | None, local: bool, as_json: bool, lost: bool | None) -> None:
    """Cells done / failed / pending per condition, attempts, workers, elapsed and ETA."""
    from crystallize_dist.distributed.report import status_table
    from crystallize_dist.distributed.results import run_status_with_lost

    settings = _settings(broker)
    store = _store(settings, local, reading=run_id)
    st = run_status_with_lost(store, settings, run_id, lost=lost, local=local)
    if as_json:
        click.echo(json.dumps(st.to_dict(), indent=2))
    else:
        status_table(st, _out())


@main.command()
@click.argument("run_id")
@store_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    envvar=ENV + "FORMAT",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to FILE.")
def result(run_id: str, broker: str | None, local: bool, fmt: str, output: str | None) -> None:
    """The result of a run (partial results name their missing cells)."""
    from crystallize_dist.distributed.results import load_result

    settings = _settings(broker)
    write_result(
        load_result(_store(settings, local, reading=run_id), run_id, settings=settings), fmt, output
    )


@main.command(name="list")
@store_options
@click.option("--limit", type=click.IntRange(min=1), default=20, help="Runs to list.")
def list_runs(broker: str | None, local: bool, limit: int) -> None:
    """Recent runs, newest first."""
    from crystallize_dist.distributed.report import runs_table

    settings = _settings(broker)
    nothing_here = local and not settings.sqlite_path.exists()  # and nothing is made
    runs_table(None if nothing_here else _store(settings, local), limit, _out())


@main.command()
@click.argument("run_id")
@store_options
def cancel(run_id: str, broker: str | None, local: bool) -> None:
    """Cancel a run: no new cell starts; recorded cells stay."""
    from crystallize_dist.distributed.coordinator import cancel as do_cancel

    do_cancel(run_id, store=_store(_settings(broker), local, reading=run_id))
    click.echo(f"cancelled {run_id}")


@main.command()
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
    from crystallize_dist.distributed import coordinator
    from crystallize_dist.distributed.results import wait_for

    if local:  # the cells run here: with the hash seed the workers use
        reexec_with_hashseed()
    settings = _settings(broker)
    store = _store(settings, local)
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

        run_local(run_id, todo, store=store, settings=settings, workers=workers)
    elif wait:
        wait_for(store, run_id, timeout=timeout)


@main.command()
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
    settings = _settings(broker)
    report = replay_run(
        run_id, store=_store(settings, local, reading=run_id), settings=settings, cells=count
    )
    for line in report.lines():
        click.echo(line)
    report.check()


def run() -> None:  # pragma: no cover - console script shim
    main(prog_name="crystallize-dist")


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("CRYSTALLIZE_DIST_CLI", "1")
    run()
