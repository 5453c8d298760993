"""Progress bars on stderr: tqdm when installed, else rich, else nothing."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

_T = TypeVar("_T")


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class _RichBar:
    def __init__(self, total: int, desc: str) -> None:
        from rich.console import Console
        from rich.progress import Progress

        self._progress = Progress(console=Console(stderr=True), transient=False)
        self._progress.start()
        self._task = self._progress.add_task(desc, total=total)

    def update(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)

    def close(self) -> None:
        self._progress.stop()


def progress_bar(total: int, desc: str, enabled: bool = True) -> Any:
    """An object with ``update(n)`` and ``close()``; a no-op when disabled."""
    if not enabled or total <= 1:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        try:
            return _RichBar(total, desc)
        except Exception:  # pragma: no cover - no terminal at all
            return _NoBar()
    return tqdm(total=total, desc=desc, file=sys.stderr)


def _counted(items: Iterable[_T], bar: Any) -> Iterator[_T]:
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        bar.close()


def progress(items: Iterable[_T], total: int, desc: str, enabled: bool = True) -> Iterable[_T]:
    """``items``, with a bar on stderr that advances as each is taken (tqdm wraps them when
    installed, as Crystallize does; else rich); ``items`` themselves when disabled or when
    there is at most one."""
    if not enabled or total <= 1:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return _counted(items, progress_bar(total, desc))
    wrapped: Iterable[_T] = tqdm(items, total=total, desc=desc, file=sys.stderr)
    return wrapped
