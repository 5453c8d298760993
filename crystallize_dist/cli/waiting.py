"""Waiting for a run and ending the command by how it went: ``wait`` and ``submit --wait``.

Both print the result when every cell has a record and exit 0 when every cell succeeded,
3 when some failed or the determinism canary found a cell that gives other numbers when
run again (one line on stderr: how many, and the first), 1 when the run was
cancelled or the wait timed out, and 130 on Ctrl-C after saying how to come back to the run.
"""

from __future__ import annotations

import click

from crystallize_dist.cli import options as opt
from crystallize_dist.cli.options import ENV, store_options
from crystallize_dist.cli.render import CellProgress, write_result
from crystallize_dist.cli.text import plain
from crystallize_dist.config import Settings
from crystallize_dist.constants import DEFAULT_ARTIFACTS_DIR
from crystallize_dist.distributed.artifacts import artifact_root, write_run_files
from crystallize_dist.distributed.coordinator import Submission
from crystallize_dist.distributed.results import load_result
from crystallize_dist.distributed.status import RunStatus, run_status
from crystallize_dist.distributed.store import RunStore, SQLiteStore
from crystallize_dist.distributed.store.failure import failure_entry, failure_of
from crystallize_dist.distributed.waiting import Waiter
from crystallize_dist.engine.plan import Cell, RunPlan
from crystallize_dist.errors import StoreWriteError
from crystallize_dist.model.experiment import Experiment
from crystallize_dist.model.references import load_experiment
from crystallize_dist.model.result import Result

EXIT_FAILED_CELLS = 3
EXIT_INTERRUPTED = 130


def _interrupted(store: RunStore, run_id: str, local: bool) -> click.exceptions.Exit:
    if local:
        store.update_state(run_id, interrupted=True)
        click.echo(
            f"interrupted: run {run_id} stopped; `crystallize-dist resume {run_id} --local` "
            "runs the cells it has left",
            err=True,
        )
    else:
        click.echo(
            f"interrupted: run {run_id} goes on on the workers; `crystallize-dist wait "
            f"{run_id}` waits again, `crystallize-dist cancel {run_id}` stops it",
            err=True,
        )
    return click.exceptions.Exit(EXIT_INTERRUPTED)


def exit_code(status: RunStatus, result: Result, local: bool) -> int:
    """0, or the code of a run that did not end well (see the module docstring), after
    saying why on stderr."""
    if status.state in ("failed", "stopped"):
        why = (
            f"failed: {status.failure}"
            if status.failure
            else "stopped: the process that ran its cells is gone"
        )
        click.echo(
            f"error: run {status.run_id} {why}; {status.done + status.failed} of "
            f"{status.total} cells have a record (`crystallize-dist resume {status.run_id}"
            f"{' --local' if local else ''}` runs the rest once the store can be written)",
            err=True,
        )
        return 1
    if status.cancelled:
        click.echo(
            f"run {status.run_id} was cancelled: {status.done + status.failed} of "
            f"{status.total} cells have a record (`crystallize-dist resume {status.run_id}` "
            "sends the rest)",
            err=True,
        )
        return 1
    canary = result.provenance.get("canary") or {}
    if canary.get("mismatched"):
        bad = canary["mismatched"]
        click.echo(
            plain(
                f"canary: {len(bad)} of {canary.get('checked')} re-run cells differ from "
                f"their records (not reproducible), the first: {bad[0]['cell']} "
                f"({bad[0]['stored']} vs {bad[0]['canary']})"
            ),
            err=True,
        )
        return EXIT_FAILED_CELLS
    if status.failed:
        key, first = next(iter(result.errors.items()), ("?", None))
        what = f"{key}: {getattr(first, 'error_type', type(first).__name__)}: {first}"
        click.echo(
            plain(f"{status.failed} of {status.total} cells failed; the first: {what}"), err=True
        )
        return EXIT_FAILED_CELLS
    return 0


def _ran_here(
    store: RunStore,
    settings: Settings,
    run_id: str,
    cells: list[Cell],
    workers: int | None,
    cells_per_task: int | None,
    bar: CellProgress,
) -> str | None:
    """Run ``cells`` on this machine's pool (``--local``); the cause when the store refused
    a write (the run is then marked failed, when the store can take that), else None."""
    from crystallize_dist.distributed.local import run_local
    from crystallize_dist.distributed.store.failure import store_failure

    assert isinstance(store, SQLiteStore)
    try:
        run_local(
            run_id,
            cells,
            store=store,
            settings=settings,
            workers=workers,
            cells_per_task=cells_per_task,
            on_progress=bar.update,
        )
    except StoreWriteError as exc:
        return store_failure(exc.__cause__ or exc)
    return None


def wait_and_show(
    store: RunStore,
    settings: Settings,
    run_id: str,
    *,
    local: bool,
    fmt: str,
    timeout: float | None,
    progress: bool,
    run_here: list[Cell] | None = None,
    workers: int | None = None,
    cells_per_task: int | None = None,
    submitted: Submission | None = None,
    experiment: Experiment | None = None,
    artifacts_dir: str = DEFAULT_ARTIFACTS_DIR,
) -> None:
    """Run the cells of ``run_here`` on this machine's pool (``--local``) or wait for the
    workers, then print the result and end the command by how the run went. ``submitted``
    is this process's own submission (its manifest and experiment need not be read back);
    otherwise hypotheses are verified with ``experiment`` and files go to
    ``artifacts_dir``."""
    if submitted is not None:
        manifest, experiment = submitted.manifest, submitted.experiment
    else:
        manifest = store.manifest(run_id)
    total = RunPlan.from_dict(manifest["plan"]).n_cells
    try:
        with CellProgress(total, progress) as bar:
            failure = None
            if run_here is not None:
                failure = _ran_here(store, settings, run_id, run_here, workers, cells_per_task, bar)
            if failure is not None:  # what the run has is its (partial) result
                status = run_status(store, run_id)
                status.failure = status.failure or failure
            else:
                waiter = Waiter(
                    store,
                    run_id,
                    None if local else settings,
                    timeout=timeout,
                    on_progress=bar.update if run_here is None else None,  # counted as they ran
                    say=bar.say,
                )
                status = waiter.wait()
    except KeyboardInterrupt:
        raise _interrupted(store, run_id, local) from None
    root = artifact_root(experiment) if experiment is not None else artifacts_dir
    result = load_result(
        store, run_id, settings=settings, experiment=experiment, artifacts_dir=root
    )
    if status.failure and not failure_of(result.provenance):  # a store that took no mark
        result.provenance["failed"] = failure_entry(status.failure)
    opt.note(write_run_files(manifest, result, root, experiment))
    write_result(result, fmt)
    code = exit_code(status, result, local)
    if code:
        raise click.exceptions.Exit(code)


@click.command()
@click.argument("run_id")
@store_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    envvar=ENV + "FORMAT",
    help="Summary format once the run is finished.",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds to wait at most."
)
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
@opt.reader_options
def wait(
    run_id: str,
    broker: str | None,
    local: bool,
    fmt: str,
    timeout: float | None,
    progress: bool,
    experiment_ref: str | None,
    artifacts_dir: str,
) -> None:
    """Wait for RUN_ID to finish, then print its summary (as submit --wait does).

    Exit code 0 when every cell succeeded, 3 when some failed, 130 on Ctrl-C.
    """
    settings = opt.settings(broker)
    store = opt.store(settings, local, reading=run_id)
    if local and store.state(run_id).get("interrupted"):
        click.echo(
            f"error: run {run_id} was interrupted and nothing runs its cells; "
            f"`crystallize-dist resume {run_id} --local` finishes it",
            err=True,
        )
        raise click.exceptions.Exit(1)
    wait_and_show(
        store,
        settings,
        run_id,
        local=local,
        fmt=fmt,
        timeout=timeout,
        progress=progress,
        experiment=load_experiment(experiment_ref)[0] if experiment_ref else None,
        artifacts_dir=artifacts_dir,
    )
