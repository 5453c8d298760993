"""Live views: ``status RUN --watch`` (redrawn in place until the run ends, then the exit
code of ``wait``) and ``workers`` (the worker nodes from their heartbeats). Store and
heartbeat text goes through ``text.plain``."""

from __future__ import annotations

import json
import time

import click
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from crystallize_dist import constants as C
from crystallize_dist.cli import options as opt
from crystallize_dist.cli.options import broker_option
from crystallize_dist.cli.text import plain
from crystallize_dist.cli.waiting import EXIT_INTERRUPTED, exit_code
from crystallize_dist.config import Settings
from crystallize_dist.distributed.canary import line as canary_line
from crystallize_dist.distributed.live import LiveView, LiveWatch
from crystallize_dist.distributed.nodes import read_nodes
from crystallize_dist.distributed.results import load_result
from crystallize_dist.distributed.store import RunStore
from crystallize_dist.distributed.waiting import Waiter


def _ago(stamp: float | None, now: float) -> str:
    return "-" if stamp is None else f"{max(0.0, now - stamp):.0f}s ago"


def _bar(done: int, failed: int, total: int, width: int = 24) -> str:
    if total <= 0:
        return ""
    ok = round(width * done / total)
    bad = round(width * failed / total)
    return "#" * ok + "x" * bad + "." * max(0, width - ok - bad)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    minutes, secs = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def live_view(view: LiveView) -> RenderableType:
    """One frame of ``status --watch``."""
    st = view.status
    now = time.time()
    rate = "-" if view.rate is None else f"{view.rate:.2f} cells/s"
    head = Text(
        plain(f"run {st.run_id} ({st.experiment}): {st.state}")
        + f"\nelapsed {_seconds(st.elapsed)}   throughput {rate}   eta {_seconds(st.eta)}"
    )
    conds = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0))
    for col in ("condition", "progress", "done", "failed", "pending"):
        conds.add_column(col, justify="left" if col in ("condition", "progress") else "right")
    for cond, c in st.per_condition.items():
        total = c["ok"] + c["error"] + c["pending"]
        conds.add_row(
            plain(cond),
            _bar(c["ok"], c["error"], total),
            str(c["ok"]),
            str(c["error"]),
            str(c["pending"]),
        )
    conds.add_row("total", _bar(st.done, st.failed, st.total), str(st.done), str(st.failed),
                  str(st.pending))  # fmt: skip
    parts: list[RenderableType] = [head, conds]
    if st.nodes:
        workers = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0))
        for col in ("worker", "last heartbeat", "done", "in flight", "state"):
            workers.add_column(col, justify="left" if col in ("worker", "state") else "right")
        for n in st.nodes:
            workers.add_row(plain(n.node), _ago(n.last_beat, now), str(n.done), str(n.in_flight),
                            n.state)  # fmt: skip
        parts.append(workers)
    if st.extra.get("canary"):
        parts.append(Text(plain(canary_line(st.extra["canary"]))))
    for line in view.errors:
        parts.append(Text(plain(f"error {line}")))
    for line in view.notices:
        parts.append(Text(plain(line)))
    return Group(*parts)


def watch_run(
    store: RunStore, settings: Settings, run_id: str, *, local: bool, timeout: float | None
) -> None:
    """Redraw the run's live view until it ends; exit with ``wait``'s code."""
    watcher = LiveWatch(store, run_id, None if local else settings)
    console = Console(markup=False, highlight=False)
    with Live(console=console, auto_refresh=False, transient=False) as live:

        def redraw(status: object) -> None:
            live.update(live_view(watcher.frame(status)), refresh=True)  # type: ignore[arg-type]

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
    result = load_result(store, run_id, settings=settings, artifacts_dir=None, verify=False)
    code = exit_code(status, result)
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
            str(n.concurrency or "-"), n.state, _ago(n.last_beat, now), str(n.cells_done),
            plain(versions or "-"), plain(runs or "-"),
        )  # fmt: skip
    opt.out().print(table)
    if not nodes:
        click.echo("no worker has beaten in the last day on this broker")
