"""The process that runs a ``--local`` run's cells (its driver), and whether it is gone.

``run_local`` notes its driver in the run's state (``driver``: host, pid and the process's
start time). A run that is not finished, cancelled, interrupted or marked failed, and whose
driver is gone, is ``stopped``: nothing runs its cells any more (the driver was killed, or
its store could take no mark of the failure, as a read-only disk cannot). Only a reader on
the same host can tell; elsewhere the run counts as running.
"""

from __future__ import annotations

import os
import socket
from typing import Any


def _start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None when it
    does not exist or this system has no /proc."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
        return int(fields[19])  # field 22 of stat: the third is fields[0]
    except (OSError, ValueError, IndexError):
        return None


def this_driver() -> dict[str, Any]:
    """This process as a run's driver."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": _start_time(pid)}


def driver_gone(entry: Any) -> bool:
    """True when ``entry`` (a run state's ``driver``) names a process of this host that no
    longer runs: its pid is gone, or belongs to a process started at another time."""
    if not isinstance(entry, dict) or entry.get("host") != socket.gethostname():
        return False
    pid = entry.get("pid")
    if type(pid) is not int or pid <= 0:
        return False
    started = _start_time(pid)
    if started is None:
        if os.path.isdir("/proc"):
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False
    return entry.get("started") is not None and started != entry.get("started")
