"""``crystallize-dist``: submit runs, start workers, read status and results.

Each option can also be set with the ``CRYSTALLIZE_DIST_*`` variable named in its help. The
verbs parse, call the library and print; errors are one line on stderr, exit code 1.
"""

from __future__ import annotations

import click

from crystallize_dist import compat
from crystallize_dist.cli import manage, reading, runs, waiting, watching, workers
from crystallize_dist.cli.options import OneLineErrors


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="crystallize-dist")
def main() -> None:
    """Run Crystallize-style experiments anywhere, with the same result bytes."""
    # files written for Crystallize import `crystallize`: alias it here and in every worker
    # process this command starts (they fork from it), unless crystallize-ml is installed
    compat.install()


for _verb in (
    runs.submit,
    waiting.wait,
    workers.worker,
    watching.workers_list,
    reading.status,
    reading.result,
    reading.list_runs,
    reading.report,
    manage.cancel,
    manage.delete,
    manage.purge,
    runs.resume,
    runs.replay,
):
    main.add_command(_verb)


def run() -> None:  # pragma: no cover - console script shim
    main(prog_name="crystallize-dist")
