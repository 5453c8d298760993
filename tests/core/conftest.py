"""Shared set-up for the core compatibility tests.

``tests/core`` goes on ``sys.path`` so ``import fixtures`` works here and in process-pool
workers; every test runs in its own temporary directory, because the default ArtifactPlugin
writes to ``./data`` and cacheable steps to ``./.cache``; the ``crystallize`` logger's level
and handlers are restored after each test (LoggingPlugin changes them).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _restore_crystallize_logger() -> Iterator[None]:
    log = logging.getLogger("crystallize")
    level, handlers = log.level, list(log.handlers)
    yield
    log.setLevel(level)
    log.handlers[:] = handlers
