"""The run store's Redis must keep every key: ``submit`` and ``worker`` read its
``maxmemory-policy``.

Under any policy but ``noeviction`` (the ``volatile-*`` and ``allkeys-*`` policies many
managed Redis services default to) a full Redis deletes keys to make room - and every run
key has a TTL, so the ``volatile-*`` policies pick them first. ``check_eviction`` returns
one warning line naming the policy and what it can lose; with ``require_noeviction``
(``CRYSTALLIZE_DIST_REQUIRE_NOEVICTION=1``) it raises EvictionPolicyError instead.
"""

from __future__ import annotations

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.store.base import RunStore
from crystallize_dist.distributed.store.redis_store import RedisStore
from crystallize_dist.errors import EvictionPolicyError, StoreError
from crystallize_dist.urls import redact

SAFE_POLICY = "noeviction"


def eviction_policy(store: RedisStore) -> str:
    """The store's ``maxmemory-policy``, from ``INFO memory`` (which managed services that
    disable ``CONFIG`` still answer), else from ``CONFIG GET``."""
    info = store.client.call(lambda: store.r.info("memory"))
    policy = info.get("maxmemory_policy")
    if not policy:
        reply = store.client.call(lambda: store.r.config_get("maxmemory-policy"))
        policy = reply.get("maxmemory-policy")
    if isinstance(policy, bytes):
        policy = policy.decode()
    if not policy:
        raise StoreError(f"Redis at {redact(store.url)} does not say its maxmemory-policy")
    return str(policy)


def check_eviction(store: RunStore, settings: Settings) -> str | None:
    """None when the store keeps every key (or is not Redis); else one warning line, or -
    with ``settings.require_noeviction`` - EvictionPolicyError."""
    if not isinstance(store, RedisStore):
        return None
    where = f"Redis at {redact(store.url)}"
    try:
        policy = eviction_policy(store)
    except StoreError as exc:
        problem = f"cannot read the maxmemory-policy of {where} ({exc}), so it may evict run keys"
    else:
        if policy == SAFE_POLICY:
            return None
        problem = (
            f"{where} has maxmemory-policy '{policy}': when it is full it evicts keys, and can "
            "lose run manifests, cell records and code bundles"
        )
    if settings.require_noeviction:
        raise EvictionPolicyError(
            f"{problem}; refusing it ({C.ENV_PREFIX}REQUIRE_NOEVICTION is set): set "
            f"maxmemory-policy {SAFE_POLICY}"
        )
    return (
        f"{problem}; set maxmemory-policy {SAFE_POLICY} (or {C.ENV_PREFIX}REQUIRE_NOEVICTION=1 "
        "to refuse such a store)"
    )
