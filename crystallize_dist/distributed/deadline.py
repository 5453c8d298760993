"""Per-cell time limits: SIGALRM raises CellTimeoutError inside the running cell.

Works where cells run on a process's main thread (Celery prefork and solo pools, the
``--local`` pool); Celery's own task time limit stays as the backstop that kills a cell that
swallows the exception. In threads a deadline cannot interrupt a cell and is not set.

The SIGALRM handler is installed once per process and stays where the signal had its
default handling (it raises only while a deadline is set, and ignores a stray SIGALRM
otherwise); a handler someone else installed is given back after each deadline. Each
deadline then costs two ``setitimer`` calls.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from crystallize_dist.errors import CellTimeoutError

_setitimer, _REAL = signal.setitimer, signal.ITIMER_REAL
_main = threading.main_thread
#: the process in which ``_expire`` is the SIGALRM handler for good
_ours = [0]


class cell_deadline:  # a lower-case name: it reads as a function, ``with cell_deadline(s):``
    """Raise CellTimeoutError in the ``with`` block after ``seconds`` (main thread only)."""

    #: the deadline being timed (at most one at a time), or None
    current: cell_deadline | None = None

    __slots__ = ("outer", "previous", "seconds", "set", "what")

    def __init__(self, seconds: float | None, what: str = "cell") -> None:
        self.seconds = seconds
        self.what = what
        self.set = False
        self.previous: Any = None
        self.outer: cell_deadline | None = None

    def __enter__(self) -> None:
        seconds = self.seconds
        if not seconds or seconds <= 0 or threading.current_thread() is not _main():
            return
        if _ours[0] != os.getpid():  # not installed for good in this process
            self.previous = signal.getsignal(signal.SIGALRM)
            if self.previous is not _expire:
                signal.signal(signal.SIGALRM, _expire)
            if not callable(self.previous):  # the default handling: ours stays
                _ours[0] = os.getpid()
        self.outer, cell_deadline.current = cell_deadline.current, self
        self.set = True
        _setitimer(_REAL, seconds)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.set:
            return
        _setitimer(_REAL, 0)
        cell_deadline.current = self.outer
        previous = self.previous
        if callable(previous) and previous is not _expire:  # someone else's: given back
            signal.signal(signal.SIGALRM, previous)

    def message(self) -> str:
        return f"{self.what} exceeded its time limit of {self.seconds:g}s"


def _expire(signum: int, frame: FrameType | None) -> None:
    deadline = cell_deadline.current
    if deadline is not None:
        cell_deadline.current = None
        raise CellTimeoutError(deadline.message())
