"""Verbs that end runs: ``cancel`` (no new cell starts), ``delete`` and ``purge`` (a run's
keys and queued task messages removed)."""

from __future__ import annotations

import re

import click

from crystallize_dist.cli import options as opt
from crystallize_dist.cli.options import store_options
from crystallize_dist.distributed import coordinator
from crystallize_dist.errors import InvalidOptionError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """``7d``, ``12h``, ``30m``, ``90s``, ``2w`` (or plain seconds) as seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        raise InvalidOptionError(
            f"--older-than {text!r} is not an age: use a number and a unit, e.g. 7d, 12h, 30m"
        )
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


@click.command()
@click.argument("run_id")
@store_options
def cancel(run_id: str, broker: str | None, local: bool) -> None:
    """Cancel a run: no new cell starts; recorded cells stay."""
    store = opt.store(opt.settings(broker), local, reading=run_id)
    click.echo(coordinator.cancel(run_id, store=store))


@click.command()
@click.argument("run_id")
@store_options
def delete(run_id: str, broker: str | None, local: bool) -> None:
    """Delete a run: its manifest, records and state, and its task messages still queued."""
    settings = opt.settings(broker)
    store = opt.store(settings, local, reading=run_id)
    removed = coordinator.delete(run_id, store=store, settings=None if local else settings)
    click.echo(f"deleted {run_id}" + (f" and {removed} task message(s)" if removed else ""))


@click.command()
@store_options
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="AGE",
    help="Delete runs created longer ago than AGE (e.g. 7d, 12h, 30m).",
)
def purge(broker: str | None, local: bool, older_than: str) -> None:
    """Delete every run created longer ago than --older-than."""
    age = parse_age(older_than)
    settings = opt.settings(broker)
    if local and not settings.sqlite_path.exists():
        click.echo("purged 0 runs")
        return
    store = opt.store(settings, local)
    gone = coordinator.purge(age, store=store, settings=None if local else settings)
    click.echo(f"purged {len(gone)} run(s)" + (": " + ", ".join(gone) if gone else ""))
