"""Run stores: one interface (RunStore), Redis and SQLite implementations."""

from __future__ import annotations

import os
from pathlib import Path

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.store.base import RunStore
from crystallize_dist.distributed.store.records import cell_key, split_key
from crystallize_dist.distributed.store.sqlite_store import SQLiteStore
from crystallize_dist.errors import BrokerError, RunNotFoundError
from crystallize_dist.urls import check_url


def open_store(url: str, *, ttl: int | None = None, retries: int = 3) -> RunStore:
    """A store for ``url``: ``redis://`` / ``rediss://`` or ``sqlite:///path``."""
    url = check_url(url, ("redis", "rediss", "sqlite"), "store URL")
    if url.startswith("sqlite://"):
        return SQLiteStore(
            Path(
                url[len("sqlite:///") :]
                if url.startswith("sqlite:///")
                else url[len("sqlite://") :]
            )
        )
    from crystallize_dist.distributed.store.redis_store import RedisStore

    if ttl is None:
        return RedisStore(url, retries=retries)
    return RedisStore(url, ttl=ttl, retries=retries)


def store_for(settings: Settings, *, local: bool = False, retries: int = 3) -> RunStore:
    """The store a command uses: SQLite under ``settings.home`` when ``local``, else the
    store URL (default: the broker's Redis)."""
    if local:
        return SQLiteStore(settings.sqlite_path)
    return open_store(settings.effective_store_url, ttl=settings.result_ttl, retries=retries)


def command_store(
    settings: Settings, local: bool, *, ping: bool = True, reading: str | None = None
) -> RunStore:
    """The store a CLI command uses, checked: Redis must answer (with no broker chosen,
    the error says how to choose one). A command ``reading`` a run never makes a new
    ``--local`` store where there is none."""
    if reading is not None and local and not settings.sqlite_path.exists():
        raise RunNotFoundError(
            f"no run '{reading}' in {settings.sqlite_path.resolve()} (no --local runs here "
            f"yet; they are kept under {C.ENV_PREFIX}HOME, by default ./.crystallize-dist of "
            "the folder you submit from)"
        )
    store = store_for(settings, local=local, retries=1)
    if not ping:
        return store
    try:
        store.ping()
    except BrokerError as exc:
        chosen = os.environ.get(C.ENV_PREFIX + "BROKER_URL")
        if local or chosen or settings.broker_url != C.DEFAULT_BROKER_URL:
            raise
        raise BrokerError(  # the default broker: say how to choose
            f"{str(exc).rstrip('.')}; pass --broker URL (or set {C.ENV_PREFIX}BROKER_URL), "
            "or use --local to run on this machine without a server"
        ) from None
    return store


__all__ = [
    "RunStore",
    "SQLiteStore",
    "cell_key",
    "command_store",
    "open_store",
    "split_key",
    "store_for",
]
