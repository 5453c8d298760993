"""The ``worker`` verb: a Celery worker that runs cells."""

from __future__ import annotations

import click

from crystallize_dist.cli import options as opt
from crystallize_dist.cli.options import ENV, broker_option


@click.command()
@broker_option
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
        opt.settings(broker, queue=queue),
        concurrency=concurrency,
        pool=pool,
        hostname=hostname,
        loglevel=loglevel,
    )
