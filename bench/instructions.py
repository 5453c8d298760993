"""Per-cell CPU instructions, SerialExecution vs a plain loop: a noise-free twin of the
serial / plain-loop line of bench/local.py.

Wall-clock ratios on a shared 2-core machine swing by 20-30 % from run to run; instruction
counts do not. This runs the doc-page-000 workload under valgrind's callgrind (when
``valgrind`` is on PATH; ``apt-get install valgrind``) at two sizes, and the difference
divided by the difference in cells is the per-cell count, free of start-up and imports:

- ``loop``: bench/local.py's ``plain_loop`` (seed as Crystallize does, fetch, ``pipeline.run``);
- ``keep``: bench/local.py's ``keeping_loop`` (the plain loop keeping each cell's step
  provenance and summary, as a Result does);
- ``serial``: ``experiment.run()`` with SerialExecution (cells, records, aggregation).

Instructions are not time (cache misses and the garbage collector weigh more in time), so
read this as the engine's own work per cell; bench/local.py gives the time.

    python bench/instructions.py          # about a minute
    python bench/instructions.py --quick  # smaller sizes
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIDES = ("loop", "keep", "serial")


def _one(side: str, cells: int) -> None:
    """Run one side with ``cells`` cells (after a small warm-up of both)."""
    import os
    import tempfile

    sys.path.insert(0, str(HERE))
    from local import SerialExecution, keeping_loop, plain_loop, tiny_experiment

    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="cdist-instr-") as scratch:
        os.chdir(scratch)  # the default ArtifactPlugin writes ./data
        try:
            plain_loop(20)
            keeping_loop(20)
            tiny_experiment(SerialExecution(), 20).run()
            if side == "loop":
                plain_loop(cells)
            elif side == "keep":
                keeping_loop(cells)
            else:
                tiny_experiment(SerialExecution(), cells).run()
        finally:
            os.chdir(here)


def instructions(side: str, cells: int) -> int:
    """Instructions callgrind counts for a whole process running ``side`` on ``cells``."""
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--side",
            side,
            "--cells",
            str(cells),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    found = re.search(r"Collected : (\d+)", out)
    if found is None:
        raise RuntimeError(f"callgrind printed no count:\n{out[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--cells", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:  # the measured child
        _one(args.side, args.cells)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not on PATH (apt-get install valgrind): nothing measured")
        return 0
    small, big = (50, 250) if args.quick else (200, 1200)
    with ThreadPoolExecutor(2) as pool:
        counts = {
            (side, n): pool.submit(instructions, side, n) for side in SIDES for n in (small, big)
        }
        per = {
            s: (counts[s, big].result() - counts[s, small].result()) / (big - small) for s in SIDES
        }
    print(
        f"per cell (callgrind, {big} - {small} cells): plain loop {per['loop']:,.0f} "
        f"instructions, keeping loop {per['keep']:,.0f}, SerialExecution {per['serial']:,.0f}"
    )
    print(
        f"serial/plain loop by instructions = {per['loop'] / per['serial']:.2f}x "
        "(bench/local.py's target, in time: >= 0.9x)"
    )
    print(
        f"  for information: keeping loop/plain loop = {per['loop'] / per['keep']:.2f}x, "
        f"serial/keeping loop = {per['keep'] / per['serial']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
