"""A small filesystem of the test's own: a tmpfs mounted in a private mount namespace (Linux,
root, ``unshare`` and ``nsenter``), so a test can fill it up without touching the machine's
disks. A ``sleep`` process started with ``unshare -m`` holds the namespace; commands run in it
through ``nsenter``; ``stop`` ends that one process by its pid, and the mount goes with it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from netns import cannot


def require_mount_namespaces() -> None:
    """Skip unless Linux + root + unshare + nsenter; fail instead when CI=true."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        cannot("a private tmpfs needs Linux and root (mount namespaces)")
    for tool in ("unshare", "nsenter", "mount"):
        if shutil.which(tool) is None:
            cannot(f"a private tmpfs needs the '{tool}' command")


class PrivateTmpfs:
    """A tmpfs of ``size`` (e.g. ``"1m"``) mounted at ``path`` in a namespace of its own."""

    def __init__(self, path: Path, size: str) -> None:
        require_mount_namespaces()
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sleep", "3600"]
        )
        mine = os.readlink("/proc/self/ns/mnt")
        deadline = time.time() + 10
        while os.readlink(f"/proc/{self.holder.pid}/ns/mnt") == mine:
            if time.time() > deadline or self.holder.poll() is not None:
                self.stop()
                raise RuntimeError("unshare did not make a mount namespace")
            time.sleep(0.02)
        self.run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path), check=True)

    def run(
        self, *args: str, env: dict[str, str] | None = None, check: bool = False,
        timeout: float = 180,
    ) -> subprocess.CompletedProcess[str]:
        """``args`` run inside the namespace (in this process's working folder)."""
        return subprocess.run(
            ["nsenter", "-t", str(self.holder.pid), "-m", *args],
            env=env, capture_output=True, text=True, check=check, timeout=timeout,
        )

    def stop(self) -> None:
        if self.holder.poll() is None:
            os.kill(self.holder.pid, signal.SIGKILL)
            self.holder.wait(timeout=10)
