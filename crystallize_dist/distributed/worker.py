"""Starting a Celery worker with our app and settings (``crystallize-dist worker``)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.config import Settings

#: The hash seed workers run with when none is set: str/bytes hashing (set iteration order)
#: is then the same on every worker, so code that iterates sets gives the same numbers.
DEFAULT_HASHSEED = "0"


def reexec_with_hashseed() -> None:
    """Run this ``crystallize-dist`` command again with PYTHONHASHSEED set (to
    DEFAULT_HASHSEED) when it is not: it cannot change inside a running interpreter, and
    processes that run cells (workers, the ``--local`` pool, ``replay``) must agree on it."""
    if os.environ.get("PYTHONHASHSEED") is not None:
        return
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    ours = argv0.name == "crystallize-dist" or (
        argv0.name == "__main__.py" and argv0.parent.name == "crystallize_dist"
    )
    if not ours:
        return  # embedded (tests with CliRunner, or a caller's own process): do not exec
    env = dict(os.environ, PYTHONHASHSEED=DEFAULT_HASHSEED)
    os.execve(sys.executable, [sys.executable, "-m", "crystallize_dist", *sys.argv[1:]], env)


def unsigned_warning(settings: Settings) -> str | None:
    """The line a worker without a secret says when it starts."""
    if settings.secret:
        return None
    return (
        f"this worker has no {C.ENV_PREFIX}SECRET: it will run whatever code the run store "
        "points to (anyone who can write to that Redis can run code here); set the "
        "submitters' secret on every worker"
    )


def beat_while_running(settings: Settings, pool: str, concurrency: int | None) -> None:
    """Start the node's heartbeat (``heartbeat.NodeBeat``) once the worker is ready, and
    stop it when the worker shuts down."""
    from celery.signals import worker_ready, worker_shutdown

    from crystallize_dist.distributed.heartbeat import NodeBeat

    beats: list[NodeBeat] = []

    def ready(sender: Any = None, **_: Any) -> None:
        node = str(getattr(sender, "hostname", "") or f"celery@{socket.gethostname()}")
        beat = NodeBeat(settings, node, pool, concurrency)
        beat.start()
        beats.append(beat)

    def shutdown(**_: Any) -> None:
        while beats:
            beats.pop().stop()

    worker_ready.connect(ready, weak=False)
    worker_shutdown.connect(shutdown, weak=False)


def start_worker(
    settings: Settings,
    *,
    concurrency: int | None = None,
    pool: str = "prefork",
    hostname: str | None = None,
    loglevel: str = "INFO",
) -> None:
    """Run a Celery worker in this process until it is stopped."""
    reexec_with_hashseed()
    from crystallize_dist.distributed.app import create_app
    from crystallize_dist.distributed.store import store_for
    from crystallize_dist.distributed.store.eviction import check_eviction

    store = store_for(settings, retries=1)
    store.ping()  # a clear one-line error before Celery starts
    for warning in (check_eviction(store, settings), unsigned_warning(settings)):
        if warning:
            print(f"warning: {warning}", file=sys.stderr, flush=True)
    store.close()
    os.environ[C.ENV_IN_WORKER] = "1"  # inherited by the pool's processes
    app = create_app(settings)
    beat_while_running(settings, pool, concurrency)
    argv = [
        "worker",
        f"--loglevel={loglevel}",
        "-Q",
        settings.queue,
        "-P",
        pool,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if concurrency:
        argv += ["-c", str(concurrency)]
    if hostname:
        argv += ["-n", hostname]
    app.worker_main(argv)
