"""Redis errors as the one line a user sees: a BrokerError when Redis cannot be reached,
refuses the credentials or does not speak Redis (with a hint when TLS is the problem, see
``tls_probe``), a StoreWriteError when it cannot take writes at all (out of memory,
read-only), a StoreError when it refused a command. Passwords are never shown."""

from __future__ import annotations

import redis

from crystallize_dist.distributed.store.tls_probe import tls_hint
from crystallize_dist.errors import BrokerError, CrystallizeError, StoreError, StoreWriteError
from crystallize_dist.urls import redact

#: what Redis answers a write it cannot take: out of memory (``maxmemory`` with
#: ``noeviction``), a read-only replica, snapshots that cannot be saved (redis-py strips
#: the error code from some of these: the classes say it then)
_FULL = (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError)
_CANNOT_WRITE = ("used memory > 'maxmemory'", "READONLY", "read only replica", "MISCONF")


def one_line(url: str, exc: Exception) -> CrystallizeError:
    """The error to raise for ``exc``, a Redis (or socket) error met talking to ``url``."""
    shown = redact(url)
    if isinstance(exc, (redis.AuthenticationError, redis.ResponseError)):
        text = str(exc)
        if isinstance(exc, redis.AuthenticationError) or "NOAUTH" in text or "WRONGPASS" in text:
            return BrokerError(f"Redis at {shown} refused the credentials: {exc}")
        if isinstance(exc, _FULL) or any(word in text for word in _CANNOT_WRITE):
            return StoreWriteError(
                f"Redis at {shown} cannot take writes: "
                f"{text.partition(' script: ')[0].rstrip('.')} (out of memory: raise its "
                "maxmemory or free memory; read-only: use the primary)"
            )
        return StoreError(f"Redis at {shown}: {exc}")
    if isinstance(exc, redis.TimeoutError):
        hint = tls_hint(url, exc, timed_out=True)
        return BrokerError(
            f"Redis at {shown} did not answer in time ({exc}); "
            + (hint or "is it a Redis server, and is it up?")
        )
    if isinstance(exc, (redis.ConnectionError, OSError)):
        hint = tls_hint(url, exc)
        return BrokerError(f"cannot reach Redis at {shown}: {exc}" + (f"; {hint}" if hint else ""))
    if isinstance(exc, redis.InvalidResponse):
        return BrokerError(
            f"{shown} does not answer in the Redis protocol ({exc}); is it a Redis server?"
        )
    return StoreError(f"Redis at {shown}: {exc}")
