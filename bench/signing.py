"""Signing benchmark: what CRYSTALLIZE_DIST_SECRET costs on the one-cell-per-task path.

Side by side in one run, rounds alternating, on one private redis-server and one worker
started the same way as bench/overhead.py's (``-P prefork -c 2``):

- **unsigned**: bench/trivial.py, N one-cell tasks, submitter and worker without a secret;
- **signed**: the same, both with a secret: the manifest is signed and verified, every
  record is signed (one HMAC over the text already encoded, 77 more bytes) and the stamp.

Each round publishes every message before its worker starts and times the worker from the
run's ``first_at`` to its ``last_at`` counter (bench/harness.py). The figure is the signed
per-cell time over the unsigned one, best round against best round, with the median of the
per-round ratios beside it. Target: under 1.05 (signing costs less than 5 %).

For information it also times, in this process, signing and verifying one record, and
``load_result`` of the last signed run with and without the secret (a reader verifies every
record while it decodes a page).

    python bench/signing.py            # 4,000 cells a side, 3 rounds
    python bench/signing.py --quick    # 300 cells a side, 2 rounds (smoke run)

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
from typing import Any

from harness import (
    TRIVIAL,
    RedisServer,
    Settings,
    best_and_median,
    machine,
    need_redis,
    open_store,
    ours_round,
    out_dir,
    save_json,
    verdict,
)

from crystallize_dist.distributed.record_signatures import RecordVerifier, sign_record
from crystallize_dist.distributed.results import load_result
from crystallize_dist.distributed.store.records import encode

TARGET = 1.05
SECRET = "bench-signing-secret"
QUEUE = "bench-signing"


def per_record_us(url: str, run_id: str, repeat: int = 20_000) -> dict[str, float]:
    """Microseconds to sign one stored record and to verify it (this process)."""
    store = open_store(url)
    record = next(iter(store.iter_records(run_id)))
    store.close()
    record = {k: v for k, v in record.items() if k not in ("attempts", "duplicates")}
    encoded = encode(record)
    t0 = time.perf_counter()
    for _ in range(repeat):
        signed = sign_record(encoded, SECRET, run_id)
    sign_us = (time.perf_counter() - t0) / repeat * 1e6
    key = f"{record['condition']}:{record['replicate']}"
    check = RecordVerifier(SECRET, run_id)
    t0 = time.perf_counter()
    for _ in range(repeat):
        check(key, signed.text)
    verify_us = (time.perf_counter() - t0) / repeat * 1e6
    return {"sign_us": sign_us, "verify_us": verify_us, "bytes": len(signed.text)}


def reading(url: str, run_id: str, arts: Path, rounds: int = 3) -> dict[str, float]:
    """Best seconds of ``load_result`` without and with the secret (alternating)."""
    store = open_store(url)
    plain, checked = [], []
    with_secret = Settings.from_env(broker_url=url, secret=SECRET)
    for _ in range(rounds):
        t0 = time.perf_counter()
        load_result(store, run_id, verify=False, artifacts_dir=arts)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        result = load_result(store, run_id, settings=with_secret, verify=False, artifacts_dir=arts)
        checked.append(time.perf_counter() - t0)
    store.close()
    assert not result.provenance["signatures"]["records_tampered"]
    return {"plain_s": min(plain), "verified_s": min(checked)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 cells a side, 2 rounds")
    parser.add_argument("-n", "--cells", type=int, help="cells per round and side")
    parser.add_argument("--rounds", type=int, help="alternating rounds per side")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a MISS")
    parser.add_argument("--out", help="folder for signing.json (default bench/out/)")
    args = parser.parse_args(argv)
    n = args.cells or (300 if args.quick else 4000)
    rounds = args.rounds or (2 if args.quick else 3)
    if not need_redis():
        return 2
    load_before = os.getloadavg()[0]
    print(f"signing: {n:,} one-cell tasks a side, {rounds} rounds; {machine()}")
    unsigned: list[dict[str, Any]] = []
    signed: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cdist-bench-") as tmpdir:
        tmp = Path(tmpdir)
        server = RedisServer(tmp / "redis").start()
        try:
            for k in range(rounds):
                first, second = (None, SECRET) if k % 2 == 0 else (SECRET, None)
                for secret in (first, second):
                    res = ours_round(server.url, tmp, TRIVIAL, n, 1, QUEUE, secret=secret)
                    (signed if secret else unsigned).append(res)
                print(
                    f"  round {k + 1}: unsigned {unsigned[-1]['elapsed'] / n * 1e3:.3f} ms/cell, "
                    f"signed {signed[-1]['elapsed'] / n * 1e3:.3f} ms/cell"
                )
            micro = per_record_us(server.url, str(signed[-1]["run_id"]))
            read = reading(server.url, str(signed[-1]["run_id"]), tmp / "arts")
        finally:
            server.stop()
    per_cell = {
        side: [r["elapsed"] / n for r in runs] for side, runs in (("u", unsigned), ("s", signed))
    }
    best = min(per_cell["s"]) / min(per_cell["u"])
    ratios = [s / u for s, u in zip(per_cell["s"], per_cell["u"], strict=True)]
    median = statistics.median(ratios)
    best_u, median_u = best_and_median(per_cell["u"], higher_is_better=False)
    best_s, median_s = best_and_median(per_cell["s"], higher_is_better=False)
    print()
    print(f"unsigned  {best_u * 1e3:.3f} ms/cell best, {median_u * 1e3:.3f} median")
    print(f"signed    {best_s * 1e3:.3f} ms/cell best, {median_s * 1e3:.3f} median")
    print(
        f"one record: signing {micro['sign_us']:.2f} us, verifying {micro['verify_us']:.2f} us "
        f"({micro['bytes']:.0f} bytes signed)"
    )
    print(
        f"load_result of {n:,} cells: {read['plain_s']:.3f} s without the secret, "
        f"{read['verified_s']:.3f} s verifying every record "
        f"({read['verified_s'] / read['plain_s']:.2f}x)"
    )
    mark = verdict(best, TARGET, higher_is_better=False)
    print(
        f"signed/unsigned per-cell time: {best:.3f} best/best, {median:.3f} median of rounds "
        f"(target < {TARGET}) {mark}"
    )
    load_after = os.getloadavg()[0]
    print(f"load average: {load_before:.2f} before, {load_after:.2f} after")
    save_json(
        out_dir(args.out, args.quick),
        "signing",
        {
            "cells": n,
            "rounds": rounds,
            "unsigned_per_cell_s": per_cell["u"],
            "signed_per_cell_s": per_cell["s"],
            "ratio_best": best,
            "ratio_median": median,
            "micro": micro,
            "reading": read,
            "load": [load_before, load_after],
        },
    )
    return 1 if args.strict and mark == "MISS" else 0


if __name__ == "__main__":
    sys.exit(main())
