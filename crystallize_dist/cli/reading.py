"""Verbs that read runs: ``status``, ``result`` and ``list``."""

from __future__ import annotations

import json

import click

from crystallize_dist.canonical import paused_gc
from crystallize_dist.cli import options as opt
from crystallize_dist.cli.options import ENV, store_options
from crystallize_dist.cli.render import runs_table, status_table, write_result
from crystallize_dist.distributed.results import load_result
from crystallize_dist.distributed.status import full_status
from crystallize_dist.model.references import load_experiment


@click.command()
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
    settings = opt.settings(broker)
    store = opt.store(settings, local, reading=run_id)
    st = full_status(store, settings, run_id, lost=lost, local=local)
    if as_json:
        click.echo(json.dumps(st.to_dict(), indent=2))
    else:
        status_table(st, opt.out())


@click.command()
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
@opt.reader_options
def result(
    run_id: str,
    broker: str | None,
    local: bool,
    fmt: str,
    output: str | None,
    experiment_ref: str | None,
    artifacts_dir: str,
) -> None:
    """The result of a run (a partial result says so, names its missing cells, has no
    digest and exits 1).

    Reading imports no code named by the store and writes files only under --artifacts-dir.
    """
    settings = opt.settings(broker)
    store = opt.store(settings, local, reading=run_id)
    experiment = load_experiment(experiment_ref)[0] if experiment_ref else None
    # the cyclic collector would walk every object of a big run's Result again and again
    # (records hold no cycles: reference counting frees them, before it runs again)
    with paused_gc():
        found = load_result(
            store, run_id, settings=settings, experiment=experiment, artifacts_dir=artifacts_dir
        )
        write_result(found, fmt, output)
        partial = bool(found.missing)
        del found
    if partial:  # a partial result is not the run's result: say so by the exit code
        raise click.exceptions.Exit(1)


@click.command(name="list")
@store_options
@click.option("--limit", type=click.IntRange(min=1), default=20, help="Runs to list.")
def list_runs(broker: str | None, local: bool, limit: int) -> None:
    """Recent runs, newest first."""
    settings = opt.settings(broker)
    nothing_here = local and not settings.sqlite_path.exists()  # and nothing is made
    store = None if nothing_here else opt.store(settings, local)
    runs_table(store, limit, opt.out(), settings.secret)
