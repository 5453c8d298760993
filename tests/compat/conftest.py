"""Shared set-up for the Crystallize 0.27 compatibility tests: every test runs in its own
temporary directory (the default ArtifactPlugin writes to ``./data``, cacheable steps to
``./.cache``), and the ``crystallize`` logger's level and handlers are restored afterwards.
``tests/compat`` goes on ``sys.path`` so process-pool workers import ``compat_fixtures``."""

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
