"""Awaiting outside a running event loop: a private loop per thread, and the drivers of
generators that yield awaitables (``Experiment.run`` / ``arun`` are one such generator)."""

from __future__ import annotations

import asyncio
import atexit
import threading
import weakref
from collections.abc import Awaitable, Generator
from typing import Any

#: A coroutine-free driver protocol: the generator yields awaitables and is sent results.
Drive = Generator[Awaitable[Any], Any, Any]

_loops = threading.local()
#: every private loop made by ``await_here`` (one per thread), closed at exit: a loop left to
#: the interpreter's teardown can be collected after its own sockets and print a traceback
_all_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


@atexit.register
def _close_loops() -> None:
    for loop in list(_all_loops):
        if not loop.is_closed() and not loop.is_running():
            loop.close()


def refuse_running_loop(problem: str) -> None:
    """Raise RuntimeError (``problem``, then what to do instead) when this thread is inside a
    running event loop, which a blocking call would block."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(f"{problem}; use `await experiment.arun(...)` (or aoptimize) instead")


def await_here(awaitable: Awaitable[Any]) -> Any:
    """Run one awaitable to completion on this thread's private event loop."""
    refuse_running_loop("an async step cannot run synchronously inside a running event loop")
    loop = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _loops.loop = loop
        _all_loops.add(loop)

    async def _wrap() -> Any:
        return await awaitable

    return loop.run_until_complete(_wrap())


def drive_sync(gen: Drive) -> Any:
    """Run a driver generator to completion, awaiting what it yields on a private loop."""
    try:
        pending = next(gen)
        while True:
            try:
                value = await_here(pending)
            except BaseException as exc:  # hand the failure back to the generator
                pending = gen.throw(exc)
            else:
                pending = gen.send(value)
    except StopIteration as stop:
        return stop.value


async def drive_async(gen: Drive) -> Any:
    """Run a driver generator on the running loop, awaiting what it yields."""
    try:
        pending = next(gen)
        while True:
            try:
                value = await pending
            except BaseException as exc:
                pending = gen.throw(exc)
            else:
                pending = gen.send(value)
    except StopIteration as stop:
        return stop.value
