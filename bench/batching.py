"""Batching benchmark: trivial-cell throughput vs cells-per-task, next to raw Celery no-ops.

One private redis-server; for each cells-per-task N in 1, 2, 5, 10, 25, 50, 100, 250 and
``auto`` (the N ``--cells-per-task auto`` picks on this machine), a round submits trivial
cells (bench/trivial.py) *before* starting one ``crystallize-dist worker -P prefork -c 2``
and times the worker from the run's ``first_at`` to its ``last_at`` counter. Raw Celery
no-op tasks (bench/noop_app.py) are published and timed the same way in the same run.
Rounds alternate every side; the best round of each is compared (the median is printed too).

Target: trivial cells with ``auto`` >= 3 x raw Celery's no-op task throughput.
Chart: bench/out/batching.png (throughput vs cells-per-task, log x; needs matplotlib, the
optional ``bench`` extra - without it the chart is skipped and the script says so).

    python bench/batching.py            # 3 rounds, about 4 minutes on 2 cores
    python bench/batching.py --quick    # smoke run: small sizes, N in 1, 10, auto; 1 round

Needs ``redis-server`` on PATH. Every process started here is stopped by its pid.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness import (
    TRIVIAL,
    RedisServer,
    best_and_median,
    machine,
    need_redis,
    ours_round,
    out_dir,
    raw_round,
    save_json,
    verdict,
)

from crystallize_dist.distributed.calibrate import (
    MAX_CELLS_PER_TASK,
    MIN_TASKS,
    auto_cells_per_task,
)

TARGET = 3.0
SIZES: list[int | str] = [1, 2, 5, 10, 25, 50, 100, 250, "auto"]
QUICK_SIZES: list[int | str] = [1, 10, "auto"]


def cells_for(n: int, scale: float) -> int:
    """Cells per round for N cells per task: enough for a few seconds of work and for at
    least ~16 messages per worker process at the biggest N (the tail stays small)."""
    base = 2500 if n <= 1 else 5000 if n <= 5 else 10000 if n <= 50 else 20000
    return max(2 * n, int(base * scale), 16 * 2 * n if scale >= 1 else 0)


def chart(path: Path, rows: list[dict[str, float]], raw_rate: float, auto_n: int) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return "chart skipped: matplotlib is not installed (pip install -e '.[bench]')"
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    fixed = [r for r in rows if not r["auto"]]
    ax.plot(
        [r["cells_per_task"] for r in fixed],
        [r["best"] for r in fixed],
        "o-",
        label="trivial cells (best round)",
    )
    ax.plot(
        [r["cells_per_task"] for r in fixed],
        [r["median"] for r in fixed],
        ".:",
        color="C0",
        alpha=0.6,
        label="trivial cells (median round)",
    )
    auto = next(r for r in rows if r["auto"])
    ax.plot([auto_n], [auto["best"]], "*", ms=14, color="C2", label=f"auto (N={auto_n})")
    ax.axhline(raw_rate, color="C3", ls="--", label=f"raw Celery no-op ({raw_rate:,.0f}/s)")
    ax.axhline(TARGET * raw_rate, color="C3", ls=":", alpha=0.6, label=f"target {TARGET:g}x raw")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_ylim(bottom=0)
    ax.set_xlabel("cells per task")
    ax.set_ylabel("cells / s (one worker, -P prefork -c 2)")
    ax.set_title("crystallize-dist: trivial-cell throughput vs batching")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return f"chart: {path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small, 1 round")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 3)")
    parser.add_argument("--out", help="folder for batching.json/.png (default bench/out)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    if not need_redis():
        return 2
    rounds = args.rounds or (1 if args.quick else 3)
    scale = 0.04 if args.quick else 1.0
    out = out_dir(args.out, args.quick)
    t0 = time.perf_counter()
    # each size's run is made big enough for its N (cells_for), so the small-run cap of
    # auto never binds here: calibrate for a run of the largest size
    auto_n = auto_cells_per_task(TRIVIAL, replicates=MIN_TASKS * MAX_CELLS_PER_TASK)
    calib = time.perf_counter() - t0
    sizes = QUICK_SIZES if args.quick else SIZES
    n_of = {s: auto_n if s == "auto" else int(s) for s in sizes}
    raw_n = max(50, int(3000 * scale))
    print(f"batching: {rounds} round(s), one worker -P prefork -c 2; {machine()}")
    print(f"auto: --cells-per-task auto chose N = {auto_n} on this machine ({calib:.2f} s)")
    rates: dict[int | str, list[float]] = {s: [] for s in sizes}
    raw: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cdist-bench-") as tmpdir:
        tmp = Path(tmpdir)
        server = RedisServer(tmp / "redis").start()
        try:
            for k in range(rounds):
                order = sizes if k % 2 == 0 else list(reversed(sizes))
                raw.append(raw_round(server.url, tmp, raw_n, "bench-raw")["rate"])
                line = [f"raw {raw[-1]:,.0f}"]
                for s in order:
                    n = cells_for(n_of[s], scale)
                    m = ours_round(server.url, tmp, TRIVIAL, n, n_of[s], f"bench-b{s}")
                    rates[s].append(m["rate"])
                    line.append(f"{s}: {m['rate']:,.0f}")
                print(f"  round {k + 1} (cells/s): " + ", ".join(line), flush=True)
        finally:
            server.stop()
    raw_best, raw_median = best_and_median(raw)
    print()
    print(f"{'cells/task':>10} {'cells':>7} {'best/s':>9} {'median/s':>9} {'x raw':>7}")
    rows: list[dict[str, float]] = []
    for s in sizes:
        best, median = best_and_median(rates[s])
        label = f"auto={auto_n}" if s == "auto" else str(s)
        n = cells_for(n_of[s], scale)
        print(f"{label:>10} {n:>7} {best:>9,.0f} {median:>9,.0f} {best / raw_best:>7.2f}")
        rows.append(
            {
                "cells_per_task": n_of[s],
                "auto": s == "auto",
                "cells": n,
                "best": best,
                "median": median,
            }
        )
    print(f"{'raw celery':>10} {raw_n:>7} {raw_best:>9,.0f} {raw_median:>9,.0f} {1:>7.2f}")
    ratio = max(rates["auto"]) / raw_best
    ratios = [o / r for o, r in zip(rates["auto"], raw, strict=True)]
    result = verdict(ratio, TARGET)
    quick = " (quick run: sizes too small to judge)" if args.quick else ""
    print(
        f"\nauto (N={auto_n}) / raw Celery throughput: {ratio:.2f}x best/best, "
        f"{statistics.median(ratios):.2f}x median of rounds (target >= {TARGET:g}x) "
        f"{result}{quick}"
    )
    if out is not None:
        print(chart(out / "batching.png", rows, raw_best, auto_n))
        save_json(
            out,
            "batching",
            {
                "auto_n": auto_n,
                "rounds": rounds,
                "raw": {"cells": raw_n, "best": raw_best, "median": raw_median},
                "rows": rows,
                "ratio_best": ratio,
                "ratio_median": statistics.median(ratios),
                "target": TARGET,
                "verdict": result,
                "machine": machine(),
            },
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 1 if args.strict and result == "MISS" else 0


if __name__ == "__main__":
    sys.exit(main())
