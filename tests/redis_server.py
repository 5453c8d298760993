"""Start and stop a real redis-server on a free loopback port (tests and benchmarks).

Only the process started here is ever stopped, by its pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_redis_server() -> str:
    """Path of redis-server; skips the test locally, fails it when CI=true."""
    path = shutil.which("redis-server")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed, and CI=true: integration tests must run")
        pytest.skip("redis-server is not installed (install the Debian package redis-server)")
    return path


class RedisServer:
    """A redis-server child process on 127.0.0.1:<port>."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        password: str | None = None,
        appendonly: bool = False,
        extra: list[str] | None = None,
    ) -> None:
        self.binary = require_redis_server()
        self.port = port or free_port()
        self.password = password
        self.workdir = workdir
        self.appendonly = appendonly
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--protected-mode",
            "no",
            "--appendonly",
            "yes" if self.appendonly else "no",
            *self.extra,
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode}") from None
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start listening within 10 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None
