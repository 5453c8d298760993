"""CPU benchmark: ~50 ms numpy cells, serial in-process vs 2 distributed worker processes.

The experiment is bench/cpu_cells.py (matrix products sized here to ~50 ms a cell on this
machine; BLAS pinned to one thread per process). Each round, side by side:

- **serial**: ``experiment.run()`` in this process (SerialExecution), wall time;
- **distributed**: the same cells submitted *before* one
  ``crystallize-dist worker -P prefork -c 2`` starts, timed from the run's ``first_at`` to
  its ``last_at`` counter; its digest must equal the serial one. Twice: with
  ``--cells-per-task auto`` (what ``submit`` is told for such cells: it picks 2 cells, about
  100 ms, per task) and with one cell per task (for comparison: a Celery task costs 2-4 ms
  here, 7-8 % of a 50 ms cell);
- **machine ceiling**: the bare kernel, the same number of times, on a warm
  ``multiprocessing`` pool of 2 processes vs one loop - what this shared machine can give
  right now (a miss the ceiling also shows is the machine's, not ours).

Target: distributed (auto) >= 1.8 x serial (best rounds; the median is printed too).

    python bench/cpu.py            # 160 cells of ~50 ms, 3 rounds, about 2 minutes
    python bench/cpu.py --quick    # smoke run: 8 cells of ~10 ms, 1 round

Needs ``redis-server`` on PATH. Every process started here is stopped by its pid.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads: one BLAS thread per process

import argparse  # noqa: E402
import importlib  # noqa: E402
import itertools  # noqa: E402
import logging  # noqa: E402
import multiprocessing  # noqa: E402
import multiprocessing.pool  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from harness import (  # noqa: E402
    BENCH,
    RedisServer,
    best_and_median,
    machine,
    need_redis,
    open_store,
    ours_round,
    out_dir,
    save_json,
    verdict,
)

from crystallize_dist.distributed.calibrate import auto_cells_per_task, parse_cells_per_task  # noqa: E402
from crystallize_dist.distributed.results import load_result  # noqa: E402
from crystallize_dist.model.references import load_experiment  # noqa: E402

CPU_REF = str(BENCH / "cpu_cells.py")
TARGET = 1.8
WORKERS = 2


def _matrix() -> np.ndarray:
    from cpu_cells import SIZE

    return np.random.default_rng(0).standard_normal((SIZE, SIZE)) / np.sqrt(SIZE)


def _bare(iters: int) -> float:
    from cpu_cells import kernel

    return float(kernel(_matrix(), iters)[0, 0])


def calibrate(target_s: float) -> tuple[int, float]:
    """Kernel rounds that take about ``target_s`` on this machine, and the measured time."""
    from cpu_cells import kernel

    a, probe = _matrix(), 100
    best = min(_timed(lambda: kernel(a, probe)) for _ in range(9))  # best: the quiet moments
    iters = max(1, round(probe * target_s / best))
    return iters, min(_timed(lambda: kernel(a, iters)) for _ in range(5))


def _timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def ceiling(pool: multiprocessing.pool.Pool, iters: int, cells: int) -> tuple[float, float]:
    """Wall seconds of ``cells`` bare kernels in one loop, and on the warm pool."""
    one = _timed(lambda: [_bare(iters) for _ in range(cells)])
    two = _timed(lambda: pool.map(_bare, [iters] * cells, chunksize=1))
    return one, two


def decompose(serial: Any, dist: Any, span: float) -> dict[str, float]:
    """Where the distributed run's time went, from the cells' own timings:
    ``busy`` - the share of WORKERS x span the worker processes spent inside cells (the rest
    is ours + Celery: dispatch, acks, record writes, loading the experiment); ``slowdown`` -
    a cell's mean duration there over its mean duration in the serial run (the machine: two
    busy processes on this shared host run slower than one); ``gap_ms`` - the median time
    between one cell's end and the next cell's start in the same process.
    Speed-up = WORKERS x busy / slowdown."""
    cells = dist.provenance["cells"].values()
    durations = [c["timing"]["duration"] for c in cells]
    one = [c["timing"]["duration"] for c in serial.provenance["cells"].values()]
    by_pid: dict[Any, list[tuple[float, float]]] = {}
    for c in cells:
        t = c["timing"]
        by_pid.setdefault(c["worker"]["pid"], []).append((t["started"], t["duration"]))
    gaps = [
        b[0] - (a[0] + a[1])
        for runs in by_pid.values()
        for a, b in itertools.pairwise(sorted(runs))
    ]
    return {
        "busy": sum(durations) / (WORKERS * span),
        "slowdown": statistics.mean(durations) / statistics.mean(one),
        "gap_ms": statistics.median(gaps) * 1e3 if gaps else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small, 1 round")
    parser.add_argument("-n", "--cells", type=int, help="cells per round (default 160)")
    parser.add_argument("--ms", type=float, help="milliseconds of work a cell (default 50)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 3)")
    parser.add_argument(
        "--cells-per-task",
        type=parse_cells_per_task,
        default="auto",
        help="N or auto (default auto); one cell per task is measured beside it",
    )
    parser.add_argument("--out", help="folder for cpu.json (default bench/out)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    if not need_redis():
        return 2
    n = args.cells or (8 if args.quick else 160)
    ms = args.ms or (10.0 if args.quick else 50.0)
    rounds = args.rounds or (1 if args.quick else 3)
    out = out_dir(args.out, args.quick)
    iters, cell_s = calibrate(ms / 1000)
    os.environ["BENCH_CPU_ITERS"] = str(iters)
    import cpu_cells

    importlib.reload(cpu_cells)  # calibration imported it: rebuild its experiment with ITERS
    logging.getLogger("crystallize").disabled = True  # the serial runs' start / end lines
    per_task = args.cells_per_task
    if per_task == "auto":
        per_task = auto_cells_per_task(CPU_REF, replicates=n)
        print(f"--cells-per-task auto chose N = {per_task}")
    print(
        f"cpu: {n} cells of {iters} x 96x96 matmul+tanh ({cell_s * 1e3:.1f} ms measured), "
        f"{rounds} round(s), {per_task} cell(s) per task (and 1 beside it); {machine()}"
    )
    experiment, _ = load_experiment(CPU_REF)
    serial: list[float] = []
    dist: list[float] = []
    single: list[float] = []  # one cell per task, for comparison
    bare: list[tuple[float, float]] = []
    parts: list[dict[str, float]] = []
    here = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="cdist-bench-") as tmpdir:
        tmp = Path(tmpdir)
        os.chdir(tmp)  # the default ArtifactPlugin writes ./data
        server = RedisServer(tmp / "redis").start()
        ctx = multiprocessing.get_context("spawn")
        try:
            with ctx.Pool(WORKERS) as pool:
                pool.map(_bare, [1] * WORKERS)  # start the ceiling's processes
                for k in range(rounds):
                    t0 = time.perf_counter()
                    result = experiment.run(replicates=n, seed=1)
                    serial.append(time.perf_counter() - t0)
                    sizes = [(int(per_task), dist)]
                    sizes += [(1, single)] if int(per_task) != 1 else []
                    for size, times in sizes:
                        m = ours_round(
                            server.url,
                            tmp,
                            CPU_REF,
                            n,
                            size,
                            f"bench-cpu-{k}-{size}",
                            env={"BENCH_CPU_ITERS": str(iters)},
                        )
                        times.append(m["elapsed"])
                        store = open_store(server.url)
                        dist_result = load_result(store, str(m["run_id"]))
                        store.close()
                        if dist_result.digest != result.digest:
                            raise RuntimeError(
                                f"digests differ: {dist_result.digest} vs serial {result.digest}"
                            )
                        if times is dist:
                            parts.append(decompose(result, dist_result, m["elapsed"]))
                    if int(per_task) == 1:
                        single.append(dist[-1])
                    bare.append(ceiling(pool, iters, n))
                    print(
                        f"  round {k + 1}: serial {serial[-1]:.3f} s, distributed "
                        f"{dist[-1]:.3f} s ({serial[-1] / dist[-1]:.2f}x; one cell per task "
                        f"{single[-1]:.3f} s, {serial[-1] / single[-1]:.2f}x); bare kernel "
                        f"{bare[-1][0]:.3f} s / {bare[-1][1]:.3f} s on {WORKERS} processes "
                        f"({bare[-1][0] / bare[-1][1]:.2f}x); worker busy {parts[-1]['busy']:.0%}, "
                        f"cells {parts[-1]['slowdown']:.2f}x slower than serial's, gap "
                        f"{parts[-1]['gap_ms']:.1f} ms",
                        flush=True,
                    )
        finally:
            server.stop()
            os.chdir(here)
    best_serial, med_serial = best_and_median(serial, higher_is_better=False)
    best_dist, med_dist = best_and_median(dist, higher_is_better=False)
    ratio = best_serial / best_dist
    ratios = [s / d for s, d in zip(serial, dist, strict=True)]
    ceil = min(b[0] for b in bare) / min(b[1] for b in bare)
    ceils = [one / two for one, two in bare]
    result_v = verdict(ratio, TARGET)
    quick = " (quick run: too small to judge)" if args.quick else ""
    print()
    print(
        f"serial       {n / best_serial:8.2f} cells/s  ({best_serial:.3f} s best, "
        f"{med_serial:.3f} s median)"
    )
    print(
        f"distributed  {n / best_dist:8.2f} cells/s  ({best_dist:.3f} s best, "
        f"{med_dist:.3f} s median; one worker -P prefork -c 2)"
    )
    print(
        f"distributed / serial: {ratio:.2f}x best/best, {statistics.median(ratios):.2f}x "
        f"median of rounds, {per_task} cell(s) per task (target >= {TARGET:g}x) {result_v}{quick}"
    )
    single_ratio = best_serial / min(single)
    single_median = statistics.median(s / d for s, d in zip(serial, single, strict=True))
    print(
        f"  one cell per task: {single_ratio:.2f}x best/best, {single_median:.2f}x median "
        "(for comparison)"
    )
    print(
        f"machine ceiling: bare kernel on {WORKERS} processes = {ceil:.2f}x one loop "
        f"(best/best; {statistics.median(ceils):.2f}x median); ours reaches "
        f"{ratio / ceil:.0%} of it"
    )
    b = statistics.median(p["busy"] for p in parts)
    slow = statistics.median(p["slowdown"] for p in parts)
    gap = statistics.median(p["gap_ms"] for p in parts)
    print(
        f"where it goes (medians): {WORKERS} x {b:.0%} busy / {slow:.2f} slowdown = "
        f"{WORKERS * b / slow:.2f}x; ours + Celery: {1 - b:.0%} of the worker time (per-task "
        f"gap {gap:.1f} ms); the machine: cells {slow:.2f}x slower with {WORKERS} running"
    )
    save_json(
        out,
        "cpu",
        {
            "cells": n,
            "iters": iters,
            "cell_ms": cell_s * 1e3,
            "serial_s": serial,
            "cells_per_task": per_task,
            "distributed_s": dist,
            "one_per_task_s": single,
            "one_per_task_ratio_best": single_ratio,
            "one_per_task_ratio_median": single_median,
            "ratio_best": ratio,
            "ratio_median": statistics.median(ratios),
            "ceiling_best": ceil,
            "ceiling_median": statistics.median(ceils),
            "busy_median": b,
            "slowdown_median": slow,
            "gap_ms_median": gap,
            "target": TARGET,
            "verdict": result_v,
            "machine": machine(),
        },
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 1 if args.strict and result_v == "MISS" else 0


if __name__ == "__main__":
    sys.exit(main())
