"""What every verb of the CLI shares: the error handling, the options that choose the
broker and store, and the settings and store a command uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

from crystallize_dist.cli.text import plain
from crystallize_dist.config import Settings
from crystallize_dist.constants import DEFAULT_ARTIFACTS_DIR
from crystallize_dist.distributed.store import RunStore, command_store
from crystallize_dist.errors import CrystallizeError

#: every option can also be set by the environment variable of this prefix named in its help
ENV = "CRYSTALLIZE_DIST_"
F = TypeVar("F", bound=Callable[..., Any])


class OneLineErrors(click.Group):
    """Turns our exceptions into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (CrystallizeError, OSError) as exc:
            # OSError: an output file that cannot be written, a home that cannot be made...
            message = " ".join(str(exc).split())
            if isinstance(exc, OSError) and not isinstance(exc, CrystallizeError):
                message = f"{exc.strerror or type(exc).__name__}: {exc.filename or message}"
            click.echo(f"error: {plain(message)}", err=True)
            ctx.exit(1)


def broker_option(fn: F) -> F:
    """``--broker URL``: the Redis URL of the broker and the run store."""
    return click.option(
        "--broker",
        metavar="URL",
        envvar=ENV + "BROKER_URL",
        help="Redis URL of broker and store [CRYSTALLIZE_DIST_BROKER_URL].",
    )(fn)


def store_options(fn: F) -> F:
    """``--broker URL`` and ``--local`` (the embedded SQLite store)."""
    fn = broker_option(fn)
    return click.option(
        "--local",
        is_flag=True,
        envvar=ENV + "LOCAL",
        help="Use the embedded SQLite store [CRYSTALLIZE_DIST_LOCAL].",
    )(fn)


def settings(broker: str | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, with ``--broker`` and other options on top."""
    return Settings.from_env(broker_url=broker, **overrides)


def store(
    config: Settings, local: bool, *, check: bool = True, reading: str | None = None
) -> RunStore:
    """The store a command uses (see ``distributed.store.command_store``)."""
    return command_store(config, local, ping=check, reading=reading)


def warn(message: str | None) -> None:
    """One ``warning:`` line on stderr (nothing for None)."""
    if message:
        click.echo(f"warning: {plain(message)}", err=True)


def note(message: str | None) -> None:
    """One ``note:`` line on stderr (nothing for None)."""
    if message:
        click.echo(f"note: {plain(message)}", err=True)


def reader_options(fn: F) -> F:
    """``--experiment REF`` and ``--artifacts-dir DIR``: what a reader of a run brings of its
    own (reading a run imports no code named by the store and writes only under DIR)."""
    fn = click.option(
        "--artifacts-dir",
        type=click.Path(file_okay=False),
        default=DEFAULT_ARTIFACTS_DIR,
        show_default=True,
        envvar=ENV + "ARTIFACTS_DIR",
        help="Where the run's shipped artifact files are written [CRYSTALLIZE_DIST_ARTIFACTS_DIR].",
    )(fn)
    return click.option(
        "--experiment",
        "experiment_ref",
        metavar="REF",
        help="The submitted experiment (file.py[:attr], package.module:attr or a config "
        "folder) on this machine: verifies the run's hypotheses when its fingerprint matches.",
    )(fn)


def out() -> Console:
    """stdout, for tables (long lines wrap rather than being cut; no markup is read)."""
    return Console(soft_wrap=True, markup=False)
