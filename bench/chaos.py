"""Chaos soak: runs keep finishing, with the serial digest, while a random fault hits the
cluster every few seconds.

Three worker "hosts" are network namespaces on a link-local subnet (tests/netns.py); Redis
runs in the root namespace with append-only persistence. Several runs are in flight at any
time, each submitted with ``crystallize-dist submit --wait`` as a user would. Every few
seconds one fault from:

- ``kill -9 worker``: a worker's main process and its pool children (the worker is started
  again, under the same name, a few seconds later, as systemd would);
- ``kill -9 pool child``: one pool process of a worker;
- ``link down``: a host's network link goes down, then up again;
- ``SIGSTOP worker``: a worker and its pool stopped for longer than the heartbeat grace
  period, then SIGCONT;
- ``redis kill -9``: Redis killed and started again from its append-only file;
- ``duplicate message``: a copy of a queued task message pushed onto the queue.

At the end every run's digest must equal its serial digest, every cell must have exactly one
counted record and no cell may be lost. The table gives the faults injected by kind, the runs
and cells completed, cells lost and double-counted, the longest stall (no run in flight
recorded a cell) and, per fault kind, the recovery time: from the fault until every cell the
hit worker had in flight (every cell in flight anywhere, for Redis) has a record.

Needs Linux, root, ``ip`` and ``redis-server``. ``--minutes`` sets the length (10 by
default); ``--quick`` is the one-minute version the test suite runs (heartbeats every second,
a 3 s grace period). Exit status 0 when every check holds.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import BENCH, RedisServer, children, machine, out_dir, save_json
from netns import Topology

from crystallize_dist import SerialExecution, load_experiment
from crystallize_dist import constants as C
from crystallize_dist.distributed.reclaim import live_nodes
from crystallize_dist.distributed.store import RunStore, open_store

EXPERIMENT = str(BENCH / "chaos_experiment.py")
REFUSED = -999  # the exit code noted for a submit refused while Redis was down
KINDS = (
    "kill -9 worker",
    "kill -9 pool child",
    "link down",
    "SIGSTOP worker",
    "redis kill -9",
    "duplicate message",
)


@dataclass
class Profile:
    """How hard and how long the soak runs."""

    minutes: float
    interval: float  # heartbeat interval
    grace: float  # heartbeat grace period
    every: tuple[float, float]  # seconds between faults
    link_down: tuple[float, float]
    redis_down: tuple[float, float]
    restart_after: float
    replicates: int
    cell_sleep: float
    in_flight: int  # runs at a time
    drain: float  # seconds for the last runs to finish after the faults stop


def profile(args: argparse.Namespace) -> Profile:
    if args.quick:
        return Profile(args.minutes or 1.0, 1.0, 3.0, (2.0, 4.0), (1.0, 4.0), (0.5, 1.5), 2.0,
                       8, 0.1, 3, 120.0)  # fmt: skip
    return Profile(args.minutes or 10.0, C.DEFAULT_HEARTBEAT_INTERVAL, C.DEFAULT_HEARTBEAT_GRACE,
                   (4.0, 10.0), (3.0, 45.0), (1.0, 5.0), 5.0, 20, 0.3, 3, 600.0)  # fmt: skip


def cli() -> str:
    script = Path(sys.executable).with_name("crystallize-dist")
    found = str(script) if script.exists() else shutil.which("crystallize-dist")
    return found or "crystallize-dist"


def message_cells(raw: bytes | str) -> set[tuple[str, str]]:
    """(run id, cell) of each cell in a task message as kombu keeps it unacknowledged
    (``[payload, exchange, routing key]``)."""
    try:
        payload = json.loads(raw)[0]
        args = json.loads(base64.b64decode(payload["body"]))[0]
        return {(str(args[0]), f"{c[0]}:{c[1]}") for c in args[1]}
    except (ValueError, KeyError, IndexError, TypeError):
        return set()


# --- the cluster ------------------------------------------------------------------------------
class Host:
    """One worker host: a namespace and the worker running in it (started again after a kill)."""

    def __init__(self, index: int, net: Topology, broker: str, env: dict[str, str],
                 logs: Path) -> None:  # fmt: skip
        self.ns = f"h{index}"
        self.node = f"w{index}@host-{index}"
        self.net, self.broker, self.env, self.logs = net, broker, env, logs
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.busy = threading.Lock()  # one fault at a time on a host

    def start(self) -> None:
        self.starts += 1
        log = (self.logs / f"{self.ns}-{self.starts}.log").open("wb")
        command = [cli(), "worker", "--broker", self.broker, "-n", self.node, "-c", "2"]
        self.proc = subprocess.Popen(
            self.net.exec_args(self.ns, *command),
            cwd=self.logs,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        if not self.alive():
            return []
        assert self.proc is not None
        return [self.proc.pid, *children(self.proc.pid)]

    def signal(self, sig: int) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        if self.proc is None:
            return
        self.signal(signal.SIGCONT)
        kids = self.pids()[1:]
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@dataclass
class Run:
    seed: int
    proc: subprocess.Popen[str]
    run_id: str | None = None
    out: str = ""
    err: str = ""
    code: int | None = None


@dataclass
class Fault:
    kind: str
    at: float
    target: str
    cells: set[tuple[str, str]]  # (run id, cell) in flight where the fault hit
    baseline: int  # cells recorded when it hit: with no cell in flight, recovery is the next
    recovered: float | None = None


@dataclass
class Soak:
    prof: Profile
    net: Topology
    server: RedisServer
    hosts: list[Host]
    store: RunStore
    env: dict[str, str]
    workdir: Path
    runs: list[Run] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    refused: int = 0  # submits refused while Redis was down (and submitted again)
    exits: list[str] = field(default_factory=list)  # workers that exited by themselves
    longest_stall: float = 0.0
    client: Any = None  # a Redis client of the soak's own, for the queue and heartbeats
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- runs ----------------------------------------------------------------------------------
    def submit(self) -> None:
        seed = 1000 + len(self.runs)
        args = [cli(), "submit", EXPERIMENT, "--wait", "--format", "json", "--no-progress",
                "--seed", str(seed), "-r", str(self.prof.replicates),
                "--timeout", str(self.prof.minutes * 60 + self.prof.drain)]  # fmt: skip
        proc = subprocess.Popen(args, cwd=self.workdir, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        run = Run(seed, proc)
        with self.lock:
            self.runs.append(run)
        threading.Thread(target=self._collect, args=(run,), daemon=True).start()

    def _collect(self, run: Run) -> None:
        out, err = run.proc.communicate()
        for line in err.splitlines():
            if line.startswith("run "):
                run.run_id = line.split()[1]
                break
        with self.lock:
            run.out, run.err = out, err
            if run.proc.returncode != 0 and run.run_id is None and "Redis" in err:
                run.code = REFUSED  # refused while Redis was down: nothing was created
                self.refused += 1
            else:
                run.code = run.proc.returncode

    def in_flight(self) -> list[Run]:
        with self.lock:
            return [r for r in self.runs if r.code is None]

    def supervise(self) -> None:
        """Start again, after the same pause, a worker that exited by itself, as systemd's
        ``Restart=always`` of deploy/systemd does (each such exit is counted: it is a fault
        of ours or of Celery's, not one the soak injected)."""
        while not self.stop.is_set():
            for host in self.hosts:
                if not host.alive() and not host.busy.locked():
                    self.exits.append(host.node)
                    code = host.proc.returncode if host.proc else None
                    when = time.strftime("%H:%M:%S")
                    print(f"  {when} worker {host.node} exited by itself (exit {code})", flush=True)
                    self._later(self.prof.restart_after, host, host.start)
            time.sleep(0.5)

    def keep_submitting(self) -> None:
        refused = 0
        while not self.stop.is_set():
            if len(self.in_flight()) < self.prof.in_flight:
                self.submit()
            time.sleep(1.0 if self.refused > refused else 0.2)
            refused = self.refused

    # -- watching ------------------------------------------------------------------------------
    def recorded(self, cells: set[tuple[str, str]]) -> bool:
        by_run: dict[str, list[str]] = defaultdict(list)
        for run_id, cell in cells:
            by_run[run_id].append(cell)
        return all(all(self.store.has_records(r, keys)) for r, keys in by_run.items())

    def progress(self) -> int:
        total = 0
        with self.lock:
            ids = [r.run_id for r in self.runs if r.run_id]
        for run_id in ids:
            counters = self.store.counters(run_id)
            total += int(counters.get("ok", 0) + counters.get("error", 0))
        return total

    def watch(self) -> None:
        """Track the longest stall and each fault's recovery, until the last run ended."""
        last, since = -1, time.monotonic()
        while True:
            ending = self.stop.is_set() and not self.in_flight()
            now = time.monotonic()
            try:
                done = self.progress()
                if done != last or not self.in_flight():
                    last, since = done, now
                for fault in [f for f in self.faults if f.recovered is None]:
                    if self.recorded(fault.cells) if fault.cells else done > fault.baseline:
                        fault.recovered = now - fault.at
            except Exception:  # Redis is down: the stall goes on
                pass
            self.longest_stall = max(self.longest_stall, now - since)
            if ending:
                return
            time.sleep(0.25)

    def in_flight_cells(self, node: str) -> set[tuple[str, str]]:
        """Cells without a record in the task messages ``node`` holds unacknowledged: the
        unacknowledged messages no other live node lists in its heartbeat (which can include
        a message another node took since its last beat: such a cell finishes at once and
        does not lengthen the recovery)."""
        client = self.store_client()
        others: set[str] = set()
        for name, beat in live_nodes(client, self.prof.grace).items():
            if name != node:
                others.update(beat.get("held", ()))
        cells = set()
        for tag, raw in client.hgetall(C.KOMBU_UNACKED).items():
            if tag.decode() in others:
                continue
            cells.update(message_cells(raw))
        return {c for c in cells if not self.recorded({c})}

    def store_client(self) -> Any:
        if self.client is None:
            import redis

            self.client = redis.Redis.from_url(self.server.url, socket_timeout=5)
        return self.client

    # -- faults --------------------------------------------------------------------------------
    def inject(self, kind: str) -> None:
        live = [h for h in self.hosts if h.alive() and not h.busy.locked()]
        if kind != "redis kill -9" and kind != "duplicate message" and not live:
            return
        host = random.choice(live) if live else None
        try:
            getattr(self, "_" + kind.replace(" ", "_").replace("-", "").lower())(host)
        except Exception as exc:  # a fault that could not be injected is reported, not fatal
            print(f"  could not inject {kind}: {exc}", flush=True)

    def _note(self, kind: str, target: str, cells: set[tuple[str, str]]) -> None:
        self.faults.append(Fault(kind, time.monotonic(), target, cells, self.progress()))
        print(f"  {time.strftime('%H:%M:%S')} {kind} ({target}): {len(cells)} cell(s) in flight",
              flush=True)  # fmt: skip

    def _kill_9_worker(self, host: Host) -> None:
        self._note("kill -9 worker", host.node, self.in_flight_cells(host.node))
        host.signal(signal.SIGKILL)
        assert host.proc is not None
        host.proc.wait()
        self._later(self.prof.restart_after, host, host.start)

    def _kill_9_pool_child(self, host: Host) -> None:
        kids = host.pids()[1:]
        if not kids:
            return
        self._note("kill -9 pool child", host.node, self.in_flight_cells(host.node))
        os.kill(random.choice(kids), signal.SIGKILL)

    def _link_down(self, host: Host) -> None:
        self._note("link down", host.node, self.in_flight_cells(host.node))
        self.net.set_link(host.ns, False)
        self._later(random.uniform(*self.prof.link_down), host,
                    lambda: self.net.set_link(host.ns, True))  # fmt: skip

    def _sigstop_worker(self, host: Host) -> None:
        self._note("SIGSTOP worker", host.node, self.in_flight_cells(host.node))
        host.signal(signal.SIGSTOP)
        self._later(self.prof.grace + 3, host, lambda: host.signal(signal.SIGCONT))

    def _redis_kill_9(self, host: Host | None) -> None:
        self._note("redis kill -9", "redis", set())  # recovered: the next record after it
        self.server.stop(signal.SIGKILL)
        time.sleep(random.uniform(*self.prof.redis_down))
        self.server.start()

    def _duplicate_message(self, host: Host | None) -> None:
        client = self.store_client()
        n = client.llen(C.DEFAULT_QUEUE)
        if not n:
            return
        raw = client.lindex(C.DEFAULT_QUEUE, random.randrange(n))
        if raw is None:
            return
        cells = message_cells(json.dumps([json.loads(raw), "", C.DEFAULT_QUEUE]))
        self._note("duplicate message", "queue", cells)
        client.rpush(C.DEFAULT_QUEUE, raw)  # taken next

    def _later(self, delay: float, host: Host, action: Any) -> None:
        """``action`` after ``delay`` seconds; the host takes no other fault meanwhile."""
        host.busy.acquire()

        def run() -> None:
            time.sleep(delay)
            try:
                action()
            finally:
                host.busy.release()

        threading.Thread(target=run, daemon=True).start()


# --- checking -----------------------------------------------------------------------------------
def serial_digest(seed: int, replicates: int) -> str:
    exp, _ = load_experiment(EXPERIMENT)
    serial = SerialExecution()
    exp.plugins.append(serial)
    try:
        quiet = io.StringIO()  # the serial run's summary is not the soak's
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            return exp.run(seed=seed, replicates=replicates).digest
    finally:
        exp.plugins.remove(serial)


def check(soak: Soak) -> dict[str, Any]:
    cells_per_run = 2 * soak.prof.replicates
    runs = [r for r in soak.runs if r.code != REFUSED]
    done, lost, double, wrong, failed, duplicates = 0, 0, 0, [], [], 0
    for run in runs:
        if run.run_id is None:
            failed.append(f"a submit with no run id: exit {run.code}: {run.err.strip()[-300:]}")
            continue
        stored = soak.store.count_records(run.run_id)
        counters = soak.store.counters(run.run_id)
        counted = int(counters.get("ok", 0) + counters.get("error", 0))
        duplicates += int(counters.get("duplicates", 0))
        lost += cells_per_run - stored
        double += max(0, counted - stored)
        if run.code != 0:
            failed.append(f"run {run.run_id}: exit {run.code}: {run.err.strip()[-300:]}")
            continue
        done += 1
        if json.loads(run.out)["digest"] != serial_digest(run.seed, soak.prof.replicates):
            wrong.append(run.run_id)
    logs = " ".join(p.read_text(errors="replace") for p in soak.workdir.glob("h*.log"))
    waiters = " ".join(r.err for r in runs)
    return {
        "reclaimed_messages": sum(int(n) for n in re.findall(r"gave (\d+) message", logs)),
        "lost_cells_sent_again": sum(
            int(n) for n in re.findall(r"(\d+) cell\(s\) of run \S+ had no record", waiters)
        ),
        "runs": len(runs),
        "runs_completed": done,
        "cells_completed": done * cells_per_run,
        "cells_lost": lost,
        "double_counted": double,
        "duplicates_first_write_won": duplicates,
        "digest_mismatches": wrong,
        "failed_runs": failed,
        "submits_refused_while_redis_down": soak.refused,
        "workers_exited_by_themselves": len(soak.exits),
    }


def table(soak: Soak, verdict: dict[str, Any]) -> str:
    lines = [f"{'fault':<20} {'injected':>8} {'recovery median':>16} {'recovery max':>13}"]
    for kind in KINDS:
        hit = [f for f in soak.faults if f.kind == kind]
        times = [f.recovered for f in hit if f.recovered is not None]
        med = f"{statistics.median(times):.1f}s" if times else "-"
        top = f"{max(times):.1f}s" if times else "-"
        unrecovered = len(hit) - len(times)
        lines.append(f"{kind:<20} {len(hit):>8} {med:>16} {top:>13}"
                     + (f"  ({unrecovered} not recovered)" if unrecovered else ""))  # fmt: skip
    lines += [
        "",
        f"runs completed      {verdict['runs_completed']} of {verdict['runs']}",
        f"cells completed     {verdict['cells_completed']}",
        f"cells lost          {verdict['cells_lost']}",
        f"double-counted      {verdict['double_counted']}",
        f"duplicates (first write won, not counted)  {verdict['duplicates_first_write_won']}",
        f"digest mismatches   {len(verdict['digest_mismatches'])}",
        f"longest stall       {soak.longest_stall:.1f}s",
        f"messages of silent workers given back (heartbeat reclaim)  "
        f"{verdict['reclaimed_messages']}",
        f"lost cells sent again by waiting submitters  {verdict['lost_cells_sent_again']}",
        f"submits refused while Redis was down (submitted again)  "
        f"{verdict['submits_refused_while_redis_down']}",
        f"workers that exited by themselves (restarted as systemd would)  "
        f"{verdict['workers_exited_by_themselves']}",
    ]
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--quick", action="store_true", help="the one-minute version")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault schedule")
    parser.add_argument("--out", default=None, help="folder for the JSON figures")
    args = parser.parse_args(argv)
    missing = [t for t in ("ip", "redis-server") if shutil.which(t) is None]
    if os.geteuid() != 0 or missing or not sys.platform.startswith("linux"):
        print("chaos.py needs Linux, root and " + ", ".join(("ip", "redis-server")),
              file=sys.stderr)  # fmt: skip
        return 2
    prof = profile(args)
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    random.seed(seed)
    print(f"chaos soak: {prof.minutes:g} min, heartbeat {prof.interval:g}s / grace "
          f"{prof.grace:g}s, fault schedule seed {seed}; {machine()}", flush=True)  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="cdist-chaos-"))
    here = Path.cwd()
    os.chdir(workdir)  # the serial reference runs write their outputs there too
    net = Topology(["hub", "h1", "h2", "h3"])
    server: RedisServer | None = None
    hosts: list[Host] = []
    soak: Soak | None = None
    try:
        net.create()
        server = RedisServer(workdir / "redis", appendonly=True,
                             extra=["--bind", "127.0.0.1", net.address(None)]).start()  # fmt: skip
        remote = f"redis://{net.address(None)}:{server.port}/0"
        env = {
            **os.environ,
            "CRYSTALLIZE_DIST_HOME": str(workdir / "home"),
            "CRYSTALLIZE_DIST_HEARTBEAT_INTERVAL": str(prof.interval),
            "CRYSTALLIZE_DIST_HEARTBEAT_GRACE": str(prof.grace),
            # the soak tests liveness, not the attempt budget: a cell hit by several faults
            # in a row must not be recorded as failed for it
            "CRYSTALLIZE_DIST_MAX_ATTEMPTS": "50",
            "CHAOS_SLEEP": str(prof.cell_sleep),
            "PYTHONUNBUFFERED": "1",
            "TMPDIR": str(workdir / "tmp"),  # what a killed worker leaves goes with the soak
        }
        (workdir / "tmp").mkdir()
        env.pop("CRYSTALLIZE_DIST_QUEUE", None)
        hosts = [Host(i, net, remote, env, workdir) for i in (1, 2, 3)]
        for host in hosts:
            host.start()
        store = open_store(server.url, retries=50)
        soak = Soak(prof, net, server, hosts, store,
                    {**env, "CRYSTALLIZE_DIST_BROKER_URL": server.url}, workdir)  # fmt: skip
        threading.Thread(target=soak.keep_submitting, daemon=True).start()
        threading.Thread(target=soak.supervise, daemon=True).start()
        watcher = threading.Thread(target=soak.watch, daemon=True)
        watcher.start()
        end = time.monotonic() + prof.minutes * 60
        while time.monotonic() < end:
            time.sleep(random.uniform(*prof.every))
            soak.inject(random.choice(KINDS))
        soak.stop.set()
        print("faults stop; waiting for the runs in flight", flush=True)
        drain_end = time.monotonic() + prof.drain
        while soak.in_flight() and time.monotonic() < drain_end:
            time.sleep(0.5)
        for host in hosts:  # the last link up, the last SIGCONT, the last restart
            with host.busy:
                pass
        watcher.join(timeout=10)
        verdict = check(soak)
        print(table(soak, verdict), flush=True)
        save_json(out_dir(args.out, args.quick), "chaos", {
            "seed": seed, "minutes": prof.minutes, "machine": machine(), **verdict,
            "longest_stall_s": soak.longest_stall,
            "faults": [f.__dict__ | {"cells": len(f.cells)} for f in soak.faults],
        })  # fmt: skip
        ok = (
            verdict["cells_lost"] == 0
            and verdict["double_counted"] == 0
            and not verdict["digest_mismatches"]
            and not verdict["failed_runs"]
            and verdict["runs_completed"] > 0
        )
        for line in verdict["failed_runs"]:
            print("FAILED " + line, flush=True)
        print("chaos soak: " + ("PASS" if ok else f"FAIL (logs in {workdir})"), flush=True)
        return 0 if ok else 1
    finally:
        if soak is not None:
            for run in soak.runs:
                if run.proc.poll() is None:
                    run.proc.kill()
        for host in hosts:
            host.stop()
        if server is not None:
            server.stop()
        for link in ("h1", "h2", "h3"):
            if link in net.devices:
                net.set_link(link, True)
        net.cleanup()
        os.chdir(here)
        if soak is None or not locals().get("ok"):
            print(f"work folder kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
