"""The in-process side of bench/throughput.py: bench/trivial.py's cells on
``ParallelExecution(executor_type="process")``, run as a command so that it is timed the way
the CLI sides are (interpreter start, imports, run, result).

    python bench/inprocess.py -n 100000 --seed 1 --workers 2

Prints one JSON line: the result's digest and the seconds ``experiment.run()`` took.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # as the workers: one BLAS thread per process

sys.path.insert(0, str(Path(__file__).resolve().parent))

from trivial import experiment  # noqa: E402

from crystallize_dist import ParallelExecution, SeedPlugin  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--cells", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    experiment.plugins = [
        SeedPlugin(seed=args.seed),
        ParallelExecution(executor_type="process", max_workers=args.workers),
    ]
    t0 = time.perf_counter()
    result = experiment.run(replicates=args.cells)
    seconds = time.perf_counter() - t0
    print(json.dumps({"digest": result.digest, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
