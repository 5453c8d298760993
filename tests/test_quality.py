"""ruff (lint + format) and mypy run as part of the test suite, the same way everywhere
(their caches go to the test's temporary folder, not the checkout)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_lint_is_clean() -> None:
    out = _run("ruff", "check", "--no-cache", "crystallize_dist", "tests", "examples", "bench")
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format_is_clean() -> None:
    out = _run("ruff", "format", "--no-cache", "--check", "crystallize_dist")
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict_is_clean(tmp_path: Path) -> None:
    """``mypy --strict`` (``strict = true`` in pyproject.toml) on the whole package."""
    out = _run("mypy", "--strict", "--cache-dir", str(tmp_path / "mypy"))
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_test_command_collects_every_test_file() -> None:
    """``python -m pytest -q`` (the README's and CI's command) runs every test file - pytest
    silently skips some folder names by default (``dist`` among them)."""
    out = _run("pytest", "--collect-only", "-q")
    assert out.returncode == 0, out.stdout + out.stderr
    collected = {line.split("::")[0] for line in out.stdout.splitlines() if "::" in line}
    files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("test_*.py")}
    assert files - collected == set()
