"""What machine and software a run or a cell ran on (stamped into provenance)."""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from crystallize_dist.constants import VERSION


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str | None]:
    """python / numpy / crystallize_dist versions (the drift guard compares these)."""
    import numpy

    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "crystallize_dist": VERSION,
    }


def host_environment() -> dict[str, Any]:
    """Versions plus hostname, platform, pid and PYTHONHASHSEED of this process."""
    return {
        **versions(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "pid": os.getpid(),
        "pythonhashseed": os.environ.get("PYTHONHASHSEED"),
        "executable": sys.executable,
    }


def git_state(path: str | Path) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the git work tree holding ``path``, or None outside one."""
    folder = Path(path)
    folder = folder if folder.is_dir() else folder.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}
