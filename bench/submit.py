"""Submit benchmark: publishing 100,000 cells, fast path vs an ``apply_async`` loop.

One private redis-server. Each round, side by side:

- **submit**: ``coordinator.submit`` of 100,000 trivial cells (bench/trivial.py) at
  cells-per-task 1 - load, plan, manifest, code bundle and the fast publish
  (``distributed/publisher.py``: pre-built messages, pipelined ``LPUSH``);
- **enqueue**: ``publisher.enqueue`` alone, the same 100,000 cells (already planned);
- **apply_async**: ``coordinator.enqueue_slow`` (one ``apply_async`` per message over one
  producer) of 10,000 cells - the yardstick's rate;
- **plan**: load + plan + the list of 100,000 cells, no Redis (to split ``submit``).

The queue is emptied after each measurement. Best and median of the rounds are printed.
Target: ``submit`` >= 20,000 cells/s for 100,000 cells; the ratio to the apply_async loop
is printed. Then a stock ``celery -A stock_app worker`` consumes a fresh 1,000-cell
fast-published run, and its result digest must equal an in-process serial run's.

    python bench/submit.py            # 3 rounds, about a minute
    python bench/submit.py --quick    # smoke run: 5,000 / 500 cells, 1 round, 100-cell check

Needs ``redis-server`` on PATH. Every process started here is stopped by its pid.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness import (
    CONCURRENCY,
    POOL,
    TRIVIAL,
    Proc,
    RedisServer,
    Settings,
    best_and_median,
    coordinator,
    finished,
    machine,
    need_redis,
    open_store,
    out_dir,
    save_json,
    verdict,
    wait_until,
    worker_env,
)

from crystallize_dist.distributed import publisher
from crystallize_dist.distributed.results import load_result
from crystallize_dist.model.references import load_experiment

TARGET = 20_000.0
QUEUE = "bench-submit"


def plan_cells(n: int) -> tuple[float, list]:  # type: ignore[type-arg]
    t0 = time.perf_counter()
    experiment, _ = load_experiment(TRIVIAL)
    spec = coordinator.plan_run(experiment, replicates=n, seed=1)
    cells = list(spec.plan.cells())
    return time.perf_counter() - t0, cells


def one_round(url: str, tmp: Path, n: int, n_slow: int) -> dict[str, float]:
    import redis

    r = redis.Redis.from_url(url)
    settings = Settings.from_env(broker_url=url, queue=QUEUE, home=tmp / "home")
    store = open_store(url)
    out: dict[str, float] = {}
    try:
        r.delete(QUEUE)
        t0 = time.perf_counter()
        sub = coordinator.submit(
            TRIVIAL, settings=settings, store=store, replicates=n, seed=1, cells_per_task=1
        )
        out["submit"] = n / (time.perf_counter() - t0)
        if sub.messages != n or r.llen(QUEUE) != n:
            raise RuntimeError(f"submit queued {r.llen(QUEUE)} messages, expected {n}")
        r.delete(QUEUE)

        seconds, cells = plan_cells(n)
        out["plan"] = n / seconds
        t0 = time.perf_counter()
        sent = publisher.enqueue(settings, sub.run_id, cells, 1)
        out["enqueue"] = n / (time.perf_counter() - t0)
        if sent != n or r.llen(QUEUE) != n:
            raise RuntimeError(f"enqueue queued {r.llen(QUEUE)} messages, expected {n}")
        r.delete(QUEUE)

        t0 = time.perf_counter()
        coordinator.enqueue_slow(settings, sub.run_id, cells[:n_slow], 1)
        out["apply_async"] = n_slow / (time.perf_counter() - t0)
        if r.llen(QUEUE) != n_slow:
            raise RuntimeError(f"apply_async queued {r.llen(QUEUE)} messages, expected {n_slow}")
        r.delete(QUEUE)
    finally:
        store.close()
        r.close()
    return out


def stock_worker_check(url: str, tmp: Path, n: int) -> tuple[bool, str]:
    """A stock ``celery`` worker runs a fast-published n-cell run; same digest as serial."""
    queue = "bench-verify"
    settings = Settings.from_env(broker_url=url, queue=queue, home=tmp / "home")
    store = open_store(url)
    sub = coordinator.submit(
        TRIVIAL, settings=settings, store=store, replicates=n, seed=1, cells_per_task=1
    )
    args = [sys.executable, "-m", "celery", "-A", "stock_app", "worker", "-P", POOL]
    args += ["-c", str(CONCURRENCY), "-Q", queue, "-n", "stock@%h", "--without-gossip"]
    args += ["--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"]
    env = worker_env(url, tmp, CRYSTALLIZE_DIST_QUEUE=queue)
    worker = Proc("stock", args, env, tmp)
    t0 = time.perf_counter()
    try:
        wait_until(finished(store, sub.run_id, n), [worker], f"{n} cells on a stock worker")
        took = time.perf_counter() - t0
        counters = store.counters(sub.run_id)
        dist = load_result(store, sub.run_id, settings=settings)
        seeds = sorted((r["replicate"], r["seed"]) for r in store.iter_records(sub.run_id))
    finally:
        worker.stop()
        store.close()
    experiment, _ = load_experiment(TRIVIAL)
    logging.getLogger("crystallize").disabled = True  # the run's start / end lines
    here = Path.cwd()
    os.chdir(tmp)  # the default ArtifactPlugin writes ./data
    try:
        serial = experiment.run(replicates=n, seed=1)
    finally:
        os.chdir(here)
    same_seeds = seeds == list(enumerate(serial.provenance["seeds"]["baseline"]))
    ok = (
        counters.get("ok", 0) == n
        and not counters.get("error")
        and dist.digest == serial.digest
        and same_seeds
    )
    return ok, (
        f"{counters.get('ok', 0):.0f}/{n} ok, {counters.get('error', 0):.0f} errors, "
        f"{took:.1f} s after the worker started; digest {dist.digest[:12]} "
        f"{'==' if dist.digest == serial.digest else '!='} serial {serial.digest[:12]}, "
        f"per-cell seeds {'==' if same_seeds else '!='} serial"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small, 1 round")
    parser.add_argument("-n", "--cells", type=int, help="cells to submit (default 100,000)")
    parser.add_argument("--rounds", type=int, help="rounds (default 3)")
    parser.add_argument("--out", help="folder for submit.json (default bench/out)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if not need_redis():
        return 2
    n = args.cells or (5_000 if args.quick else 100_000)
    n_slow = max(100, n // 10)
    rounds = args.rounds or (1 if args.quick else 3)
    check_n = 100 if args.quick else 1000
    out = out_dir(args.out, args.quick)
    print(f"submit: {n:,} cells (apply_async: {n_slow:,}), {rounds} round(s); {machine()}")
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="cdist-bench-") as tmpdir:
        tmp = Path(tmpdir)
        server = RedisServer(tmp / "redis").start()
        try:
            warm = Settings.from_env(broker_url=server.url, queue="bench-warm", home=tmp / "home")
            _, cells = plan_cells(10)
            coordinator.enqueue_slow(warm, "warm", cells, 1)  # build the app and its pool once
            for k in range(rounds):
                rows.append(one_round(server.url, tmp, n, n_slow))
                print(
                    f"  round {k + 1} (cells/s): "
                    + ", ".join(f"{key} {v:,.0f}" for key, v in rows[-1].items()),
                    flush=True,
                )
            ok, detail = stock_worker_check(server.url, tmp, check_n)
        finally:
            server.stop()
    best = {key: best_and_median([r[key] for r in rows]) for key in rows[0]}
    print()
    print(f"{'':<14}{'best cells/s':>14}{'median':>12}{'x apply_async':>15}")
    slow = best["apply_async"][0]
    for key, label in (
        ("submit", "submit"),
        ("enqueue", "enqueue"),
        ("apply_async", "apply_async"),
        ("plan", "plan (no I/O)"),
    ):
        b, m = best[key]
        print(f"{label:<14}{b:>14,.0f}{m:>12,.0f}{b / slow:>15.1f}")
    submit_best = best["submit"][0]
    ratio = submit_best / slow
    ratios = [r["submit"] / r["apply_async"] for r in rows]
    result = verdict(submit_best, TARGET)
    quick = " (quick run: too small to judge)" if args.quick else ""
    print(
        f"\nsubmit of {n:,} cells: {submit_best:,.0f} cells/s best, {best['submit'][1]:,.0f} "
        f"median (target >= {TARGET:,.0f}) {result}{quick}"
    )
    print(
        f"submit / apply_async loop: {ratio:.1f}x best/best, {statistics.median(ratios):.1f}x "
        f"median of rounds; enqueue alone / apply_async: {best['enqueue'][0] / slow:.1f}x"
    )
    print(
        f"stock celery worker on a fast-published {check_n}-cell run: {detail} "
        f"{'PASS' if ok else 'FAIL'}"
    )
    save_json(
        out,
        "submit",
        {
            "cells": n,
            "cells_apply_async": n_slow,
            "rounds": rows,
            "best": {k: v[0] for k, v in best.items()},
            "median": {k: v[1] for k, v in best.items()},
            "ratio_best": ratio,
            "ratio_median": statistics.median(ratios),
            "target": TARGET,
            "verdict": result,
            "stock_worker": {"ok": ok, "detail": detail},
            "machine": machine(),
        },
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if not ok:
        return 1
    return 1 if args.strict and result == "MISS" else 0


if __name__ == "__main__":
    sys.exit(main())
