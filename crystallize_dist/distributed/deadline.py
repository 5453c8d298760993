"""Per-cell time limits: SIGALRM raises CellTimeoutError inside the running cell.

Works where cells run on a process's main thread (Celery prefork and solo pools, the
``--local`` pool); Celery's own task time limit stays as the backstop that kills a cell that
swallows the exception. In threads a deadline cannot interrupt a cell and is not set.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from crystallize_dist.errors import CellTimeoutError


@contextmanager
def cell_deadline(seconds: float | None, what: str = "cell") -> Iterator[None]:
    """Raise CellTimeoutError in this block after ``seconds`` (main thread only)."""
    if not seconds or seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise CellTimeoutError(f"{what} exceeded its time limit of {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
