"""Start real ``crystallize-dist worker`` processes for integration tests; stop them by pid.

``kill()`` sends SIGKILL to the worker's main process and its pool children (found through
/proc), which is what a pre-empted machine looks like.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    out: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    if not task_dir.exists():
        return out
    for task in task_dir.iterdir():
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def cli_env(broker_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONHASHSEED", None)
    env.update({"CRYSTALLIZE_DIST_BROKER_URL": broker_url, "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


class Worker:
    """One ``crystallize-dist worker`` subprocess."""

    def __init__(
        self,
        broker_url: str,
        log_dir: Path,
        *,
        name: str = "w1",
        concurrency: int = 2,
        pool: str = "prefork",
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.name = name
        self.log = log_dir / f"worker-{name}.log"
        args = [
            sys.executable,
            "-m",
            "crystallize_dist",
            "worker",
            "-c",
            str(concurrency),
            "-P",
            pool,
            "-n",
            f"{name}@%h",
            "--loglevel",
            "INFO",
            *(extra_args or []),
        ]
        # the worker's own temporary folder: one killed with kill -9 cannot clean it up
        scratch = log_dir / f"tmp-{name}"
        scratch.mkdir(parents=True, exist_ok=True)
        full_env = cli_env(broker_url, **{"TMPDIR": str(scratch), **(env or {})})
        self._fh = self.log.open("wb")
        self.proc = subprocess.Popen(
            args, cwd=cwd or log_dir, env=full_env, stdout=self._fh, stderr=subprocess.STDOUT
        )

    @property
    def host(self) -> str:
        import socket

        return socket.gethostname()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> Worker:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if " ready." in self.text():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"worker {self.name} exited {self.proc.returncode}:\n" + self.text()[-3000:]
                )
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.name} not ready in {timeout}s:\n" + self.text()[-3000:])

    def pool_pids(self) -> list[int]:
        return children(self.pid)

    def kill(self) -> None:
        """SIGKILL the main process and every pool child."""
        for pid in [self.pid, *self.pool_pids()]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)
        self._fh.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            kids = self.pool_pids()
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
                return
            for pid in kids:  # children normally exit with their parent; make sure
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._fh.close()


def run_cli(
    *args: str,
    broker_url: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """``crystallize-dist ARGS`` as a subprocess (in this process's working folder unless
    ``cwd`` says otherwise)."""
    full_env = cli_env(broker_url or "redis://127.0.0.1:1/0", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "crystallize_dist", *args],
        cwd=cwd or Path.cwd(),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
