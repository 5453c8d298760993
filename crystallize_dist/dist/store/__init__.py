"""Run stores: one interface (RunStore), Redis and SQLite implementations."""

from __future__ import annotations

from pathlib import Path

from crystallize_dist.config import Settings, check_url
from crystallize_dist.dist.store.base import RunStore, cell_key, split_key
from crystallize_dist.dist.store.sqlite_store import SQLiteStore


def open_store(url: str, *, ttl: int | None = None, retries: int = 3) -> RunStore:
    """A store for ``url``: ``redis://`` / ``rediss://`` or ``sqlite:///path``."""
    check_url(url, ("redis", "rediss", "sqlite"), "store URL")
    if url.startswith("sqlite://"):
        return SQLiteStore(
            Path(
                url[len("sqlite:///") :]
                if url.startswith("sqlite:///")
                else url[len("sqlite://") :]
            )
        )
    from crystallize_dist.dist.store.redis_store import RedisStore

    if ttl is None:
        return RedisStore(url, retries=retries)
    return RedisStore(url, ttl=ttl, retries=retries)


def store_for(settings: Settings, *, local: bool = False, retries: int = 3) -> RunStore:
    """The store a command uses: SQLite under ``settings.home`` when ``local``, else the
    store URL (default: the broker's Redis)."""
    if local:
        return SQLiteStore(settings.sqlite_path)
    return open_store(settings.effective_store_url, ttl=settings.result_ttl, retries=retries)


__all__ = ["RunStore", "SQLiteStore", "cell_key", "open_store", "split_key", "store_for"]
