"""One frame of ``status --watch``: the run's progress per condition, throughput and ETA,
its workers with their last heartbeat, the canary, recent errors and what the waiter said.
Text from the store and the heartbeats goes through ``text.plain``."""

from __future__ import annotations

import time

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from crystallize_dist.cli.text import plain
from crystallize_dist.distributed.canary import line as canary_line
from crystallize_dist.distributed.live import LiveView


def ago(stamp: float | None, now: float) -> str:
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
            workers.add_row(plain(n.node), ago(n.last_beat, now), str(n.done), str(n.in_flight),
                            n.state)  # fmt: skip
        parts.append(workers)
    if st.extra.get("canary"):
        parts.append(Text(plain(canary_line(st.extra["canary"]))))
    for line in view.errors:
        parts.append(Text(plain(f"error {line}")))
    for line in view.notices:
        parts.append(Text(plain(line)))
    return Group(*parts)
