"""Turning a Result, a run's status or the list of runs into text: tables, JSON and CSV.

Every name and message that comes from a run store is printed through ``text.plain`` on
consoles that read no markup: whoever wrote it cannot style, hide or escape the output."""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from crystallize_dist.canonical import to_jsonable
from crystallize_dist.cli.tables import fitted_table, grouped_table
from crystallize_dist.cli.text import PlainJsonWriter, json_plain, plain
from crystallize_dist.constants import STEP_PROVENANCE_LIMIT
from crystallize_dist.distributed.canary import line as canary_line
from crystallize_dist.distributed.run_list import find_runs
from crystallize_dist.distributed.status import RunStatus
from crystallize_dist.distributed.store import RunStore
from crystallize_dist.distributed.store.failure import failure_of
from crystallize_dist.distributed.verification import signature_line
from crystallize_dist.engine.summary import summary_rows
from crystallize_dist.model.result import Result
from crystallize_dist.model.result_stream import write_json


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def partial_line(result: Result) -> str | None:
    """The line that opens a partial result (cells without a record), or None."""
    missing = result.missing
    if not missing:
        return None
    failure = failure_of(result.provenance)
    why = f"; the run failed: {failure}" if failure else ""
    return plain(
        f"partial result: {len(missing)} cells have no record, so these are not the run's "
        f"final numbers and it has no digest{why}"
    )


def result_table(result: Result, console: Console) -> None:
    """Print the per-condition, per-metric summary and the run's facts (a partial result
    says so on its first line, and has no digest)."""
    opening = partial_line(result)
    if opening:
        console.print(opening)
    rows = []
    for row in summary_rows(result):
        ci = (
            "-"
            if row["ci_low"] is None or math.isnan(row["ci_low"])
            else f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"
        )
        numbers = (str(row["n"]), _fmt(row["mean"]), _fmt(row["std"]), ci)
        rows.append((plain(row["condition"]), plain(row["metric"]), numbers))
    heads = ("condition", "metric")
    table = grouped_table("Result", heads, ("n", "mean", "std", "95% CI"), rows, console)
    console.print(table)
    for hyp in result.metrics.hypotheses:
        best = hyp.ranking.get("best") if isinstance(hyp.ranking, dict) else None
        results = to_jsonable(hyp.results, strict=False)  # numbers as numbers, not np.float64(...)
        console.print(plain(f"hypothesis {hyp.name}: best={best} results={results}"))
    for line in result_notes(result):
        console.print(line)
    if result.errors:
        console.print(
            plain(
                f"errors: {len(result.errors)} failed cells: "
                + ", ".join(sorted(result.errors)[:10])
                + (" ..." if len(result.errors) > 10 else "")
            )
        )
    if result.missing:
        console.print(
            plain(
                f"partial: {len(result.missing)} cells without a record: "
                + ", ".join(result.missing[:10])
                + (" ..." if len(result.missing) > 10 else "")
            )
        )
    console.print("digest: none (partial result)" if opening else f"digest: {result.digest}")


def result_notes(result: Any, *, problems_only: bool = False) -> list[str]:
    """The lines a reader is told besides the numbers: what was verified (a run read from a
    store; with ``problems_only`` only when something did not verify), why hypotheses were
    not verified, what was left out while reading."""
    prov = result.provenance
    lines = []
    signatures = prov.get("signatures") if "run_id" in prov else None
    if signatures and not (
        problems_only and not signatures.get("records_tampered") and not signatures.get("left_out")
    ):
        lines.append(signature_line(signatures))
    note = prov.get("hypothesis_note") or prov.get("hypothesis_error")
    if note:
        lines.append(f"note: {note}")
    lines += [f"note: {n}" for n in prov.get("read_notes", ())]
    return [plain(line) for line in lines]


def result_csv(result: Result) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=["condition", "metric", "n", "mean", "std", "ci_low", "ci_high"]
    )
    writer.writeheader()
    for row in summary_rows(result):  # names escaped as in every other output
        writer.writerow(
            {**row, "condition": plain(row["condition"]), "metric": plain(row["metric"])}
        )
    return out.getvalue()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def status_table(status: RunStatus, console: Console) -> None:
    title = plain(f"Run {status.run_id} ({status.experiment})")
    table = fitted_table(title, ("condition",), ("done", "failed", "pending"))
    for cond, c in status.per_condition.items():
        table.add_row(plain(cond), str(c["ok"]), str(c["error"]), str(c["pending"]))
    table.add_row("total", str(status.done), str(status.failed), str(status.pending))
    console.print(table)
    console.print(
        f"state: {status.state}  attempts: {status.attempts}  duplicates: "
        f"{status.duplicates}  elapsed: {_duration(status.elapsed)}  "
        f"eta: {_duration(status.eta)}"
    )
    if status.nodes:
        workers = fitted_table(
            "Workers", ("worker",), ("last heartbeat", "done", "in flight"), text_last=("state",)
        )
        now = time.time()
        for node in status.nodes:
            ago = "-" if node.last_beat is None else f"{_duration(now - node.last_beat)} ago"
            workers.add_row(
                plain(node.node), ago, str(node.done), str(node.in_flight), plain(node.state)
            )
        console.print(workers)
    else:
        console.print(plain(f"workers: {', '.join(status.workers) or '-'}"))
    if status.failure:
        console.print(plain(f"failed: {status.failure}"))
    elif status.state == "stopped":
        console.print(
            "stopped: the process that ran its cells is gone; `crystallize-dist resume "
            f"{status.run_id} --local` runs the rest"
        )
    for name, error in sorted(status.load_errors.items()):
        console.print(plain(f"load error on {name}: {error}"))
    if status.extra.get("drift"):
        console.print(plain(f"drift: {status.extra['drift']}"))
    if status.extra.get("canary"):
        console.print(plain(canary_line(status.extra["canary"])))
    if status.extra.get("lost"):
        console.print(
            plain(
                f"lost: {len(status.extra['lost'])} cells: " + ", ".join(status.extra["lost"][:10])
            )
        )


class CellProgress:
    """A progress bar on stderr (rich)."""

    def __init__(self, total: int, enabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self.progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
            transient=False,
        )
        self.task = self.progress.add_task("cells", total=total)

    def __enter__(self) -> CellProgress:
        self.progress.start()
        return self

    def update(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def say(self, line: str) -> None:
        """One line on stderr, above the bar."""
        self.progress.console.print(plain(line), markup=False, highlight=False, soft_wrap=True)

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def write_result(result: Any, fmt: str, output: str | None = None) -> None:
    """Print (or write to ``output``) a result as a table, JSON or CSV; the warnings of
    its first replicate go to stderr first, one ``warning:`` line each."""
    for line in result.provenance.get("warnings", ()):
        sys.stderr.write(f"warning: {plain(line)}\n")
    if fmt == "csv" and partial_line(result):
        sys.stderr.write(f"{partial_line(result)}\n")
    if fmt == "json":
        # indented for people; compact (several times faster) and written piece by piece
        # for big results; control and private-use characters as \u escapes either way
        if len(result.provenance.get("cells", ())) > STEP_PROVENANCE_LIMIT:
            with open(output, "w") if output else nullcontext(sys.stdout) as out:
                write_json(result, PlainJsonWriter(out))
                out.write("\n")
            _problems(result)
            return
        text = json_plain(result.to_json(indent=2))
    elif fmt == "csv":
        text = result_csv(result)
    else:
        if output:
            console = Console(file=open(output, "w"), width=120, markup=False)  # noqa: SIM115
            result_table(result, console)
            console.file.close()
        else:
            result_table(result, Console(soft_wrap=True, markup=False))
        return
    if output:
        Path(output).write_text(text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    _problems(result)


def _problems(result: Any) -> None:
    for line in result_notes(result, problems_only=True):  # said on stderr for people too
        sys.stderr.write(line + "\n")


def runs_table(
    store: RunStore | None,
    limit: int,
    console: Console,
    secret: str | None = None,
    *,
    name: str | None = None,
    tags: dict[str, str] | None = None,
    state: str | None = None,
) -> None:
    """Recent runs of ``store`` (None: no store, no runs) that match ``name`` (a glob),
    ``tags`` and ``state``, newest first: name (the experiment's for a run without one),
    state, cells, start, duration and tags (see ``run_list.find_runs``)."""
    found, notes = (
        find_runs(store, limit, name=name, tags=tags, state=state, secret=secret)
        if store is not None
        else ([], [])
    )
    ids = [r if isinstance(r, str) else r.run_id for r in found]
    table = Table(title="Runs", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0))
    # run ids are never cut short, even on a narrow or no terminal (``list | awk``)
    table.add_column("run id", no_wrap=True, min_width=max(map(len, ids), default=6))
    # a run's tags go on the line below its name, so the table fits 80 columns
    table.add_column("name / tags", overflow="fold")
    for col in ("state", "cells", "failed", "started", "took"):
        table.add_column(col, no_wrap=True, justify="left" if col == "state" else "right")
    for run in found:
        if isinstance(run, str):
            table.add_row(run, "-", "unreadable", "-", "-", "-", "-")
            continue
        started = time.strftime("%m-%d %H:%M", time.localtime(run.created)) if run.created else "-"
        tag_text = " ".join(f"{k}={v}" for k, v in sorted(run.tags.items()))
        table.add_row(
            run.run_id,
            plain(run.name or run.experiment) + (f"\n{plain(tag_text)}" if tag_text else ""),
            run.state,
            f"{run.done}/{run.total}",
            str(run.failed),
            started,
            _duration(run.elapsed),
        )
    console.print(table)
    for line in notes:
        console.print(plain(line))
