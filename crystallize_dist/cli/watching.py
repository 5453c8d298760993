"""Live views: ``status RUN --watch`` (redrawn in place until the run ends, then the exit
code of ``wait``) and ``workers`` (the worker nodes from their heartbeats). Store and
heartbeat text goes through ``text.plain``."""

from __future__ import annotations

import json
import time

import click
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table

from crystallize_dist import constants as C
from crystallize_dist.cli import options as opt
from crystallize_dist.cli.live_view import ago, live_view
from crystallize_dist.cli.options import broker_option
from crystallize_dist.cli.text import plain
from crystallize_dist.cli.waiting import EXIT_INTERRUPTED, exit_code
from crystallize_dist.config import Settings
from crystallize_dist.distributed.live import LiveWatch, ending
from crystallize_dist.distributed.nodes import read_nodes
from crystallize_dist.distributed.status import RunStatus
from crystallize_dist.distributed.store import RunStore
from crystallize_dist.distributed.waiting import Waiter


def watch_run(
    store: RunStore, settings: Settings, run_id: str, *, local: bool, timeout: float | None
) -> None:
    """Redraw the run's live view until it ends; exit with ``wait``'s code."""
    watcher = LiveWatch(store, run_id, None if local else settings)
    console = Console(markup=False, highlight=False)
    with Live(console=console, auto_refresh=False, transient=False) as live:

        def redraw(status: RunStatus) -> None:
            live.update(live_view(watcher.frame(status)), refresh=True)

        waiter = Waiter(
            store,
            run_id,
            None if local else settings,
            timeout=timeout,
            poll=C.LIVE_POLL,
            say=watcher.say,
            on_poll=redraw,
        )
        try:
            status = waiter.wait()
        except KeyboardInterrupt:
            live.stop()
            click.echo(
                f"stopped watching run {run_id}; it goes on (`crystallize-dist status "
                f"{run_id} --watch` watches again)",
                err=True,
            )
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        redraw(status)
    if not console.is_terminal:  # rich ends the last frame with a newline on terminals only
        console.line()
    code = exit_code(status, ending(store, run_id, status), local)
    if code:
        raise click.exceptions.Exit(code)


@click.command(name="workers")
@broker_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def workers_list(broker: str | None, as_json: bool) -> None:
    """Live and recently dead workers (from their heartbeats): node, host, pid, pool,
    concurrency, versions, last heartbeat, cells done and the runs they work on."""
    settings = opt.settings(broker)
    nodes = read_nodes(settings)
    if as_json:
        click.echo(json.dumps([n.to_dict() for n in nodes], indent=2))
        return
    now = time.time()
    table = Table(title="Workers", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0))
    table.add_column("node", overflow="fold")
    for col in ("host", "pid", "pool", "conc", "state", "last beat", "done"):
        table.add_column(
            col, overflow="fold", justify="right" if col in ("pid", "done") else "left"
        )
    table.add_column("versions", overflow="fold")
    table.add_column("runs (in flight)", overflow="fold")
    for n in nodes:
        versions = ", ".join(f"{k} {v}" for k, v in sorted(n.versions.items()))
        runs = " ".join(f"{r} ({c})" for r, c in sorted(n.runs.items()))
        table.add_row(
            plain(n.node), plain(n.host or "-"), str(n.pid or "-"), plain(n.pool or "-"),
            str(n.concurrency or "-"), n.state, ago(n.last_beat, now), str(n.cells_done),
            plain(versions or "-"), plain(runs or "-"),
        )  # fmt: skip
    opt.out().print(table)
    if not nodes:
        click.echo("no worker has beaten in the last day on this broker")
