"""Turning a Result or a status into text: summary statistics, tables, JSON and CSV."""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from crystallize_dist.constants import STEP_PROVENANCE_LIMIT
from crystallize_dist.core.canonical import to_jsonable
from crystallize_dist.core.result import Result
from crystallize_dist.distributed.results import RunStatus, run_status
from crystallize_dist.distributed.store import RunStore
from crystallize_dist.errors import RunNotFoundError

# Two-sided 95% critical values of Student's t for 1..30 degrees of freedom.
_T975 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]


def t_critical(df: int) -> float:
    """Two-sided 95% critical value of Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    return 1.96 + 2.4 / df  # within 0.002 of the exact value for df > 30


def _as_float(value: float) -> float:
    """A metric value as a float; an int too big for one counts as infinite."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def summarize(values: Sequence[Any]) -> dict[str, Any]:
    """n, mean, sample std and a 95% t-interval of the numeric values."""
    nums = [_as_float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    n = len(nums)
    if n == 0:
        return {"n": len(values), "mean": None, "std": None, "ci_low": None, "ci_high": None}
    mean = math.fsum(nums) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in nums) / (n - 1)) if n > 1 else 0.0
    half = t_critical(n - 1) * std / math.sqrt(n) if n > 1 else math.nan
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def summary_rows(result: Result) -> Iterator[dict[str, Any]]:
    """One row per (condition, metric), conditions in canonical order."""
    conditions = {"baseline": result.metrics.baseline, **result.metrics.treatments}
    for cond, tm in conditions.items():
        for metric in sorted(tm.metrics):
            yield {"condition": cond, "metric": metric, **summarize(tm.metrics[metric])}


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def result_table(result: Result, console: Console) -> None:
    """Print the per-condition, per-metric summary and the run's facts."""
    table = Table(title="Result", show_lines=False)
    for col in ("condition", "metric", "n", "mean", "std", "95% CI"):
        table.add_column(col, justify="right" if col not in ("condition", "metric") else "left")
    for row in summary_rows(result):
        ci = (
            "-"
            if row["ci_low"] is None or math.isnan(row["ci_low"])
            else f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"
        )
        table.add_row(
            row["condition"], row["metric"], str(row["n"]), _fmt(row["mean"]), _fmt(row["std"]), ci
        )
    console.print(table)
    for hyp in result.metrics.hypotheses:
        best = hyp.ranking.get("best") if isinstance(hyp.ranking, dict) else None
        results = to_jsonable(hyp.results, strict=False)  # numbers as numbers, not np.float64(...)
        console.print(f"hypothesis {hyp.name}: best={best} results={results}")
    note = result.provenance.get("hypothesis_note") or result.provenance.get("hypothesis_error")
    if note:
        console.print(f"note: {note}")
    if result.errors:
        console.print(
            f"errors: {len(result.errors)} failed cells: "
            + ", ".join(sorted(result.errors)[:10])
            + (" ..." if len(result.errors) > 10 else "")
        )
    if result.missing:
        console.print(
            f"partial: {len(result.missing)} cells without a record: "
            + ", ".join(result.missing[:10])
            + (" ..." if len(result.missing) > 10 else "")
        )
    console.print(f"digest: {result.digest}")


def result_csv(result: Result) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=["condition", "metric", "n", "mean", "std", "ci_low", "ci_high"]
    )
    writer.writeheader()
    for row in summary_rows(result):
        writer.writerow(row)
    return out.getvalue()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def status_table(status: RunStatus, console: Console) -> None:
    table = Table(title=f"Run {status.run_id} ({status.experiment})")
    for col in ("condition", "done", "failed", "pending"):
        table.add_column(col, justify="left" if col == "condition" else "right")
    for cond, c in status.per_condition.items():
        table.add_row(cond, str(c["ok"]), str(c["error"]), str(c["pending"]))
    table.add_row("total", str(status.done), str(status.failed), str(status.pending))
    console.print(table)
    state = "cancelled" if status.cancelled else ("finished" if status.finished else "running")
    console.print(
        f"state: {state}  attempts: {status.attempts}  duplicates: "
        f"{status.duplicates}  elapsed: {_duration(status.elapsed)}  "
        f"eta: {_duration(status.eta)}"
    )
    console.print(f"workers: {', '.join(status.workers) or '-'}")
    if status.extra.get("drift"):
        console.print(f"drift: {status.extra['drift']}")
    if status.extra.get("lost"):
        console.print(
            f"lost: {len(status.extra['lost'])} cells: " + ", ".join(status.extra["lost"][:10])
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

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def write_result(result: Any, fmt: str, output: str | None = None) -> None:
    """Print (or write to ``output``) a result as a table, JSON or CSV."""

    if fmt == "json":
        # indented for people; compact (and several times faster) for big results
        small = len(result.provenance.get("cells", ())) <= STEP_PROVENANCE_LIMIT
        text = result.to_json(indent=2 if small else None)
    elif fmt == "csv":
        text = result_csv(result)
    else:
        if output:
            console = Console(file=open(output, "w"), width=120)  # noqa: SIM115
            result_table(result, console)
            console.file.close()
        else:
            result_table(result, Console(soft_wrap=True))
        return
    if output:
        Path(output).write_text(text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    note = result.provenance.get("hypothesis_note") or result.provenance.get("hypothesis_error")
    if note:  # also in provenance; said on stderr so a reader of the JSON/CSV sees it
        sys.stderr.write(f"note: {note}\n")


def runs_table(store: RunStore | None, limit: int, console: Console) -> None:
    """Recent runs of ``store`` (None: no store, no runs), newest first (runs whose keys
    expired are left out)."""
    table = Table(title="Runs")
    ids = store.run_ids(limit) if store is not None else []
    # run ids are never cut short, even on a narrow or no terminal (``list | awk``)
    table.add_column("run id", no_wrap=True, min_width=max(map(len, ids), default=6))
    for col in ("experiment", "done", "failed", "total", "state"):
        table.add_column(col)
    if store is None:
        console.print(table)
        return
    for run_id in ids:
        try:
            st = run_status(store, run_id)
        except RunNotFoundError:  # expired: its keys outlived by the runs index
            continue
        state = "cancelled" if st.cancelled else ("finished" if st.finished else "running")
        table.add_row(run_id, st.experiment, str(st.done), str(st.failed), str(st.total), state)
    console.print(table)
