"""End-to-end throughput: the same trivial cells in-process, on ``--local`` and on Celery.

Three commands run bench/trivial.py's cells (one step recording one metric, so a cell is
almost all overhead), each timed from the moment it starts to the moment it exits - the
time a person typing it waits:

- **in-process pool**: ``python bench/inprocess.py`` - ``ParallelExecution(process)`` with 2
  workers, ``experiment.run()``;
- **--local**: ``crystallize-dist submit bench/trivial.py --local --workers 2`` (the
  embedded SQLite store; the summary table and digest printed);
- **Celery**: ``crystallize-dist submit bench/trivial.py --cells-per-task auto --wait``
  against one ``crystallize-dist worker -P prefork -c 2`` that is already running (workers
  are long-lived): submit -> calibrate -> publish -> run -> every record read back -> summary.

Rounds alternate the three sides (the order rotates every round); each side's digest must
equal the in-process one. The ratios are in-process time / the side's time (1.0: as fast as
the in-process pool), the median of the per-round ratios beside the best round's, with the
load average before and after. Targets (issue 16): Celery >= 0.4x, --local >= 0.5x.

    python bench/throughput.py                 # 100,000 cells, 3 rounds (~2 minutes)
    python bench/throughput.py -n 30000 --rounds 5
    python bench/throughput.py --quick         # smoke run: 3,000 cells, 1 round

Needs ``redis-server`` on PATH. Every process started here is stopped by its pid.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import (
    BENCH,
    TRIVIAL,
    RedisServer,
    machine,
    need_redis,
    out_dir,
    save_json,
    start_ours,
    verdict,
    worker_env,
)

TARGETS = {"celery": 0.4, "local": 0.5}
QUEUE = "bench-throughput"
SIDES = ("inprocess", "local", "celery")


def _digest(stdout: str) -> str:
    """The digest a side printed (the JSON line of inprocess.py, or a summary's last line)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("digest: "):
            return line.split()[1]
        if line.startswith("{"):
            return str(json.loads(line)["digest"])
    raise RuntimeError(f"no digest in the output:\n{stdout[-2000:]}")


def _timed(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} ... exited {proc.returncode}:\n{proc.stderr}")
    return seconds, _digest(proc.stdout)


def one_side(side: str, n: int, url: str, tmp: Path, k: int) -> tuple[float, str]:
    cli = [sys.executable, "-m", "crystallize_dist", "submit", TRIVIAL]
    cli += ["--replicates", str(n), "--seed", "1", "--no-progress"]
    if side == "inprocess":
        args = [sys.executable, str(BENCH / "inprocess.py"), "-n", str(n), "--seed", "1"]
        return _timed(args, worker_env(url, tmp), tmp)
    if side == "local":
        env = worker_env(url, tmp, CRYSTALLIZE_DIST_HOME=str(tmp / f"local-{k}"))
        return _timed([*cli, "--local", "--workers", "2"], env, tmp)
    env = worker_env(url, tmp, CRYSTALLIZE_DIST_QUEUE=QUEUE)
    return _timed([*cli, "--cells-per-task", "auto", "--wait"], env, tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 3,000 cells, 1 round")
    parser.add_argument("-n", "--cells", type=int, help="cells per run (default 100,000)")
    parser.add_argument("--rounds", type=int, help="rounds (default 3)")
    parser.add_argument("--out", help="folder for throughput.json (default bench/out)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if not need_redis():
        return 2
    n = args.cells or (3_000 if args.quick else 100_000)
    rounds = args.rounds or (1 if args.quick else 3)
    out = out_dir(args.out, args.quick)
    load_before = os.getloadavg()[0]
    print(f"throughput: {n:,} trivial cells end to end, {rounds} round(s); {machine()}")
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory(prefix="cdist-bench-") as tmpdir:
        tmp = Path(tmpdir)
        server = RedisServer(tmp / "redis").start()
        worker = start_ours(server.url, tmp, QUEUE, loglevel="INFO")
        try:
            worker.wait_ready()
            for k in range(rounds):
                order = SIDES[k % 3 :] + SIDES[: k % 3]
                digests = {}
                for side in order:
                    seconds, digests[side] = one_side(side, n, server.url, tmp, k)
                    times[side].append(seconds)
                if len(set(digests.values())) != 1:
                    raise RuntimeError(f"the sides' digests differ: {digests}")
                line = ", ".join(f"{s} {times[s][-1]:.2f} s" for s in SIDES)
                print(f"  round {k + 1}: {line}")
        finally:
            worker.stop()
            server.stop()
    load_after = os.getloadavg()[0]
    figures: dict[str, dict[str, float]] = {}
    print()
    for side in SIDES:
        best = min(times[side])
        row = {"best_s": best, "median_s": statistics.median(times[side])}
        if side != "inprocess":
            ratios = [a / b for a, b in zip(times["inprocess"], times[side], strict=True)]
            row["ratio_median"] = statistics.median(ratios)
            row["ratio_best"] = max(ratios)
        figures[side] = row
        print(
            f"{side:<10} {n / row['median_s']:9,.0f} cells/s median "
            f"({n / best:,.0f} best), {row['median_s']:.2f} s median"
        )
    verdicts = {}
    for side, target in TARGETS.items():
        row = figures[side]
        verdicts[side] = verdict(row["ratio_median"], target)
        print(
            f"{side} / in-process pool: {row['ratio_median']:.2f}x median of rounds "
            f"({row['ratio_best']:.2f}x best)   target >= {target}x  {verdicts[side]}"
            + (" (quick run)" if args.quick else "")
        )
    print(f"load average before {load_before:.2f}, after {load_after:.2f}")
    save_json(
        out,
        "throughput",
        {
            "cells": n,
            "rounds": rounds,
            "times_s": times,
            "figures": figures,
            "targets": TARGETS,
            "verdicts": verdicts,
            "load_before": load_before,
            "load_after": load_after,
            "machine": machine(),
        },
    )
    return 1 if args.strict and "MISS" in verdicts.values() else 0


if __name__ == "__main__":
    sys.exit(main())
