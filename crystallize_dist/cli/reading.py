"""Verbs that read runs: ``status``, ``result`` and ``list``."""

from __future__ import annotations

import json

import click

from crystallize_dist.canonical import paused_gc
from crystallize_dist.cli import options as opt
from crystallize_dist.cli.comparing import write_comparisons
from crystallize_dist.cli.options import ENV, store_options
from crystallize_dist.cli.render import runs_table, status_table, write_result
from crystallize_dist.cli.rows import rows_csv, write_text
from crystallize_dist.cli.text import plain
from crystallize_dist.cli.watching import watch_run
from crystallize_dist.distributed.results import load_result
from crystallize_dist.distributed.run_list import STATES, parse_tags
from crystallize_dist.distributed.status import full_status
from crystallize_dist.errors import InvalidOptionError
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
@click.option(
    "--watch",
    is_flag=True,
    help="Redraw in place until the run ends; exit with wait's codes (0, 3, 1, 130).",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds to watch at most."
)
def status(
    run_id: str,
    broker: str | None,
    local: bool,
    as_json: bool,
    lost: bool | None,
    watch: bool,
    timeout: float | None,
) -> None:
    """Cells done / failed / pending per condition, attempts, workers, elapsed and ETA."""
    settings = opt.settings(broker)
    store = opt.store(settings, local, reading=run_id)
    if watch:
        if as_json:
            raise InvalidOptionError("--watch redraws a view; it prints no JSON")
        watch_run(store, settings, run_id, local=local, timeout=timeout)
        return
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
    type=click.Choice(["table", "json", "csv", "rows"]),
    default="table",
    envvar=ENV + "FORMAT",
    help="rows: CSV with one row per recorded value.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to FILE.")
@click.option(
    "--compare",
    is_flag=True,
    help="Paired comparisons of every treatment with the baseline, a table per metric "
    "(--format json: a JSON list).",
)
@click.option(
    "--baseline", default="baseline", show_default=True, help="The condition --compare uses."
)
@opt.reader_options
def result(
    run_id: str,
    broker: str | None,
    local: bool,
    fmt: str,
    output: str | None,
    compare: bool,
    baseline: str,
    experiment_ref: str | None,
    artifacts_dir: str,
) -> None:
    """The result of a run (a partial result says so, names its missing cells, has no
    digest and exits 1).

    Reading imports no code named by the store and writes files only under --artifacts-dir.
    """
    if compare and fmt not in ("table", "json"):
        raise InvalidOptionError(f"--compare prints a table or JSON, not --format {fmt}")
    settings = opt.settings(broker)
    store = opt.store(settings, local, reading=run_id)
    experiment = load_experiment(experiment_ref)[0] if experiment_ref else None
    # the cyclic collector would walk every object of a big run's Result again and again
    # (records hold no cycles: reference counting frees them, before it runs again)
    with paused_gc():
        found = load_result(
            store, run_id, settings=settings, experiment=experiment, artifacts_dir=artifacts_dir
        )
        if compare:
            write_comparisons(found, fmt, output, baseline)
        elif fmt == "rows":
            write_text(rows_csv(found.value_rows()), output)
        else:
            write_result(found, fmt, output)
        partial = bool(found.missing)
        del found
    if partial:  # a partial result is not the run's result: say so by the exit code
        raise click.exceptions.Exit(1)


@click.command(name="list")
@store_options
@click.option("--limit", type=click.IntRange(min=1), default=20, help="Runs to list.")
@click.option(
    "--name", "name", metavar="GLOB", help="Only runs whose name (or experiment) matches."
)
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Only runs with this tag.")
@click.option("--status", "state", type=click.Choice(STATES), help="Only runs in this state.")
def list_runs(
    broker: str | None,
    local: bool,
    limit: int,
    name: str | None,
    tags: tuple[str, ...],
    state: str | None,
) -> None:
    """Recent runs, newest first: name, state, cells, start, duration and tags."""
    wanted = parse_tags(tags)
    settings = opt.settings(broker)
    nothing_here = local and not settings.sqlite_path.exists()  # and nothing is made
    store = None if nothing_here else opt.store(settings, local)
    runs_table(store, limit, opt.out(), settings.secret, name=name, tags=wanted, state=state)


@click.command()
@click.argument("run_id")
@store_options
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default="report.html",
    show_default=True,
    help="The HTML file to write.",
)
@opt.reader_options
def report(
    run_id: str,
    broker: str | None,
    local: bool,
    output: str,
    experiment_ref: str | None,
    artifacts_dir: str,
) -> None:
    """Write RUN_ID's report page: one HTML file that works offline (header, summary and
    comparison tables, charts, timeline, errors, workers). A run still going gets a report
    of what has finished, marked partial. Needs crystallize-dist[report]."""
    from crystallize_dist.distributed.report import write_run_report

    settings = opt.settings(broker)
    store = opt.store(settings, local, reading=run_id)
    experiment = load_experiment(experiment_ref)[0] if experiment_ref else None
    data = write_run_report(
        store,
        run_id,
        output,
        settings=settings,
        local=local,
        experiment=experiment,
        artifacts_dir=artifacts_dir,
    )
    click.echo(f"wrote {output}" + (f" (partial: {plain(data.partial)})" if data.partial else ""))
