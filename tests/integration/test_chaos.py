"""The chaos soak's one-minute version: bench/chaos.py --quick (three worker hosts in network
namespaces, append-only Redis, several runs in flight, a random fault every few seconds) must
end with every run's serial digest, no cell lost and none counted twice. Linux and root only;
CI must run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from netns import require_netns

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_one_minute_of_chaos_loses_nothing(tmp_path: Path) -> None:
    require_netns()
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chaos.py"), "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=420,
    )
    print(out.stdout)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    lines = out.stdout.splitlines()
    assert "cells lost          0" in lines and "double-counted      0" in lines
    assert "digest mismatches   0" in lines and lines[-1] == "chaos soak: PASS"
    injected = [line for line in lines if line.startswith("  ") and " cell(s) in flight" in line]
    assert len(injected) >= 10, "fewer than ten faults in a minute"
    assert not list(tmp_path.iterdir()), "the soak left files in its working folder"
