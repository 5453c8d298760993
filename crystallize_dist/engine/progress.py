"""A progress bar on stderr: tqdm when installed, else rich, else nothing."""

from __future__ import annotations

import sys
from typing import Any


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
