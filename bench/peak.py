"""Run one ``crystallize-dist`` command in this process and, as it exits, print its peak
RSS to stderr as ``peak-rss-mb <MB>`` (``VmHWM`` of this process, read at exit: a parent's
``ru_maxrss`` of its children would include the parent's own peak, which Linux carries
across fork + exec). bench/scale.py runs ``result RUN --format json`` through it.

    python bench/peak.py result RUN --format json > result.json
"""

from __future__ import annotations

import atexit
import resource
import sys
from pathlib import Path


def vm_hwm_mb() -> float:
    """This process's peak RSS (``VmHWM``, Linux), or ru_maxrss where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _say() -> None:
    sys.stderr.write(f"peak-rss-mb {vm_hwm_mb():.1f}\n")


if __name__ == "__main__":
    atexit.register(_say)
    from crystallize_dist.cli import main

    main(sys.argv[1:], prog_name="crystallize-dist")
