"""Shared fixtures: a real redis-server per test session, a temporary folder of the
session's own, and helpers on sys.path."""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from redis_server import RedisServer  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def own_temp_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The system temporary folder of the tests and of every process they start (TMPDIR):
    one of the session's own, which must be empty when the session ends - no test, worker or
    benchmark leaves files behind in the system's temporary folder. The session also works
    in a folder of its own (experiments write ``./data``), so nothing lands in the checkout."""
    folder = tmp_path_factory.mktemp("system-temp")
    saved = os.environ.get("TMPDIR")
    here = os.getcwd()
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = None  # gettempdir() looks again
    os.chdir(tmp_path_factory.mktemp("work"))
    try:
        yield folder
    finally:
        os.chdir(here)
        if saved is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved
        tempfile.tempdir = None
        # this process's own multiprocessing folder goes when the process exits
        mine = multiprocessing.current_process()._config.get("tempdir")
        left = sorted(p.name for p in folder.iterdir() if str(p) != mine)
        assert not left, f"files left in the temporary folder: {left}"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port for the whole session."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The session server's URL with its database flushed before and after the test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    try:
        yield redis_server.url
    finally:
        client.flushall()
        client.close()
