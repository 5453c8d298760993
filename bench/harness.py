"""Shared plumbing of the distributed benchmarks (batching, submit, scale, cpu).

A private redis-server (tests/redis_server.py), worker subprocesses started the way
bench/overhead.py starts them (``-P prefork -c 2``, gossip/mingle/heartbeat off, log level
WARNING) and stopped by their pid (and their pool children's), rounds that publish every
message *before* the worker starts, and the verdict / summary helpers every script prints.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
for _p in (ROOT / "tests", BENCH):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from redis_server import RedisServer  # noqa: E402
from workers import children  # noqa: E402

from crystallize_dist.config import Settings  # noqa: E402
from crystallize_dist.distributed import coordinator  # noqa: E402
from crystallize_dist.distributed.store import RunStore, open_store  # noqa: E402

TRIVIAL = str(BENCH / "trivial.py")
POOL, CONCURRENCY = "prefork", 2
LOGLEVEL = "WARNING"
TIMEOUT = 900.0
BLAS_ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

__all__ = [
    "BENCH",
    "CONCURRENCY",
    "OUT",
    "POOL",
    "ROOT",
    "TRIVIAL",
    "Proc",
    "RedisServer",
    "RunStore",
    "Settings",
    "best_and_median",
    "coordinator",
    "finished",
    "machine",
    "need_redis",
    "open_store",
    "ours_round",
    "out_dir",
    "raw_round",
    "save_json",
    "start_ours",
    "verdict",
    "wait_until",
    "worker_env",
]


# --- processes ------------------------------------------------------------------------------
class Proc:
    """A subprocess with its output in a log file; stopped by pid (and its pool children)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.log = cwd / f"{name}.log"
        self._fh = self.log.open("wb")
        self.proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=self._fh, stderr=subprocess.STDOUT
        )

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")

    def wait_ready(self, timeout: float = 60.0) -> Proc:
        """Wait for Celery's ``... ready.`` log line (the worker must log at INFO)."""
        deadline = time.monotonic() + timeout
        while " ready." not in self.log.read_text(errors="replace"):
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready within {timeout:.0f}s; see {self.log}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            kids = children(self.proc.pid)
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            for pid in kids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._fh.close()


def worker_env(url: str, tmp: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CRYSTALLIZE_DIST_BROKER_URL": url,
            "CRYSTALLIZE_DIST_HOME": str(tmp / "home"),
            "PYTHONHASHSEED": "0",  # our worker would re-exec to set it: start both alike
            "PYTHONPATH": os.pathsep.join([str(BENCH), env.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            ),
            **BLAS_ONE_THREAD,
        }
    )
    env.update(extra)
    return env


def wait_until(done: Callable[[], bool], procs: Sequence[Proc], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not done():
        for p in procs:
            p.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def need_redis() -> bool:
    if shutil.which("redis-server") is None:
        print("redis-server is not installed (Debian package redis-server)", file=sys.stderr)
        return False
    return True


# --- one worker, ours or raw Celery ---------------------------------------------------------
def start_ours(
    url: str,
    tmp: Path,
    queue: str,
    name: str = "ours",
    concurrency: int = CONCURRENCY,
    loglevel: str = LOGLEVEL,
    **env: str,
) -> Proc:
    """``crystallize-dist worker -P prefork -c N`` on ``queue``."""
    args = [sys.executable, "-m", "crystallize_dist", "worker", "-P", POOL]
    args += ["-c", str(concurrency), "-n", f"{name}@%h", "--loglevel", loglevel]
    return Proc(name, args, worker_env(url, tmp, CRYSTALLIZE_DIST_QUEUE=queue, **env), tmp)


def finished(store: RunStore, run_id: str, n: int) -> Callable[[], bool]:
    def check() -> bool:
        c = store.counters(run_id)
        return c.get("ok", 0) + c.get("error", 0) >= n

    return check


def ours_round(
    url: str,
    tmp: Path,
    ref: str,
    n: int,
    cells_per_task: int,
    queue: str,
    *,
    env: dict[str, str] | None = None,
    secret: str | None = None,
) -> dict[str, float]:
    """Submit ``n`` cells of ``ref`` (published before any worker runs), then start one worker
    and time it from the run's ``first_at`` to its ``last_at`` counter. ``secret`` is the
    submitter's and the worker's CRYSTALLIZE_DIST_SECRET (None: neither has one)."""
    settings = Settings.from_env(broker_url=url, queue=queue, home=tmp / "home")
    settings = dataclasses.replace(settings, secret=secret)
    env = {**(env or {}), "CRYSTALLIZE_DIST_SECRET": secret or ""}
    store = open_store(url)
    t0 = time.perf_counter()
    sub = coordinator.submit(
        ref, settings=settings, store=store, replicates=n, seed=1, cells_per_task=cells_per_task
    )
    submitted = time.perf_counter() - t0
    worker = start_ours(url, tmp, queue, **env)
    try:
        wait_until(finished(store, sub.run_id, n), [worker], f"{n} cells")
        counters = store.counters(sub.run_id)
        if counters.get("error"):
            bad = next(r for r in store.iter_records(sub.run_id) if r["status"] != "ok")
            raise RuntimeError(
                f"{counters['error']:.0f} cells failed, e.g. {bad['condition']}:"
                f"{bad['replicate']}: {bad['error']['type']}: {bad['error']['message']}"
            )
    finally:
        worker.stop()
        store.close()
    elapsed = counters["last_at"] - counters["first_at"]
    return {
        "n": n,
        "messages": sub.messages,
        "elapsed": elapsed,
        "rate": n / elapsed,
        "submit_s": submitted,
        "run_id": sub.run_id,  # type: ignore[dict-item]
    }


def raw_round(url: str, tmp: Path, n: int, queue: str) -> dict[str, float]:
    """Publish ``n`` raw Celery no-op tasks (bench/noop_app.py), then start one worker and
    time it from the first to the last task's stamp."""
    os.environ["BENCH_BROKER_URL"] = url
    os.environ["BENCH_QUEUE"] = queue
    import noop_app
    import redis

    r = redis.Redis.from_url(url)
    r.delete(noop_app.COUNTER, noop_app.FIRST_AT, noop_app.LAST_AT)
    t0 = time.perf_counter()
    with noop_app.app.producer_or_acquire() as producer:
        for i in range(n):
            noop_app.noop.apply_async((i,), producer=producer, queue=queue)
    published = time.perf_counter() - t0
    args = [sys.executable, "-m", "celery", "-A", "noop_app", "worker", "-P", POOL]
    args += ["-c", str(CONCURRENCY), "-Q", queue, "-n", "raw@%h", "--without-gossip"]
    args += ["--without-mingle", "--without-heartbeat", "--loglevel", LOGLEVEL]
    worker = Proc("raw", args, worker_env(url, tmp, BENCH_BROKER_URL=url, BENCH_QUEUE=queue), tmp)
    try:
        wait_until(lambda: int(r.get(noop_app.COUNTER) or 0) >= n, [worker], f"{n} tasks")
        first = float(r.get(noop_app.FIRST_AT) or 0.0)
        last = float(r.get(noop_app.LAST_AT) or 0.0)
    finally:
        worker.stop()
        r.close()
    elapsed = last - first
    # the first stamp is written when the first task *ends*: n - 1 tasks fit in the window
    return {"n": n, "elapsed": elapsed, "rate": (n - 1) / elapsed, "submit_s": published}


# --- reporting ------------------------------------------------------------------------------
def best_and_median(values: Sequence[float], higher_is_better: bool = True) -> tuple[float, float]:
    best = max(values) if higher_is_better else min(values)
    return best, statistics.median(values)


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    ok = value >= target if higher_is_better else value < target
    return "PASS" if ok else "MISS"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _redis_version() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        return "not installed"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return next((w[2:] for w in out.split() if w.startswith("v=")), out.strip())


def machine() -> str:
    """One line: CPUs, CPU model, Python, Celery, Redis, load average."""
    import celery

    return (
        f"{os.cpu_count()} CPUs ({_cpu_model()}), Python {platform.python_version()}, "
        f"Celery {celery.__version__}, redis-server {_redis_version()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )


def out_dir(arg: str | None, quick: bool) -> Path | None:
    """Where a script writes its figures (JSON) and charts: ``--out DIR``, else bench/out/
    for full runs and nowhere for ``--quick`` runs (a smoke run never overwrites figures)."""
    if arg:
        return Path(arg)
    return None if quick else OUT


def save_json(out: Path | None, name: str, data: dict[str, Any]) -> Path | None:
    """The figures of a run as ``<out>/<name>.json`` (bench/README.md is written from them)."""
    if out is None:
        return None
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path
