"""Signatures with ``CRYSTALLIZE_DIST_SECRET``: HMAC-SHA256 over canonical bytes.

What is signed, by whom, and what each signature is bound to (docs/security.md):

=========  ==========================  =====================================================
what       signed by                   over
=========  ==========================  =====================================================
manifest   the submitter               its canonical JSON without ``signature`` (the run
                                       id, experiment reference, bundle, entry point, seed
                                       table and options are all inside)
state      ``resume --allow-drift``    ``state``, run id, field name, the value's canonical
                                       JSON
record     the worker that wrote it    ``record``, run id, cell key, the stored text
stamp      the worker it describes     ``worker``, run id, worker node, the stamp's
                                       canonical JSON
bundle     the submitter               the zip's bytes (its address is their sha256)
=========  ==========================  =====================================================

The binding is written before the signed bytes as ``kind`` and each name length-prefixed,
one a line, so no two bindings give the same bytes. A signature is 64 lowercase hex
digits; its shape is checked before it is compared (``hmac.compare_digest``, in constant
time), so a malformed one is a SignatureError, never a TypeError.
"""

from __future__ import annotations

import functools
import hmac
import re
from collections.abc import Mapping
from typing import Any

from crystallize_dist.canonical import canonical_json
from crystallize_dist.errors import SignatureError

#: the field that holds a signature inside a signed mapping (manifest, state entry, stamp)
FIELD = "signature"
_SHAPE = re.compile(r"\A[0-9a-f]{64}\Z")


@functools.lru_cache(maxsize=4)
def _keyed(secret: str) -> hmac.HMAC:
    """An HMAC-SHA256 keyed with ``secret`` and fed nothing yet: each MAC starts from a copy
    of it (the key is not set up again for every record)."""
    return hmac.new(secret.encode(), digestmod="sha256")


def mac(secret: str, data: bytes) -> str:
    """Hex HMAC-SHA256 of ``data`` keyed with ``secret``."""
    keyed = _keyed(secret).copy()
    keyed.update(data)
    return keyed.hexdigest()


def binding(kind: str, *names: str) -> bytes:
    """The bytes that bind a signature to what it is for (see the module docstring)."""
    return "".join([kind, "\n", *(f"{len(n)}:{n}\n" for n in names)]).encode()


def well_formed(signature: object) -> bool:
    """Whether ``signature`` has the shape of one: 64 lowercase hex digits."""
    return isinstance(signature, str) and _SHAPE.match(signature) is not None


def shown(signature: object) -> str:
    """A malformed signature as a short, printable text for an error message."""
    return ascii(signature)[:24]


def matches(secret: str, data: bytes, signature: object) -> bool:
    """Whether ``signature`` is well formed and is ``mac(secret, data)``."""
    return well_formed(signature) and hmac.compare_digest(mac(secret, data), str(signature))


def _unsigned(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k != FIELD}


def sign_mapping(value: Mapping[str, Any], secret: str, kind: str, *names: str) -> dict[str, Any]:
    """``value`` with its ``signature``: the MAC of its canonical JSON under a binding."""
    body = _unsigned(value)
    data = binding(kind, *names) + canonical_json(body).encode()
    return {**body, FIELD: mac(secret, data)}


def check_mapping(
    value: Mapping[str, Any], secret: str, kind: str, *names: str, what: str
) -> str | None:
    """None when ``value`` carries a good signature (see ``sign_mapping``), else why not."""
    signature = value.get(FIELD)
    if signature is None:
        return f"{what} is unsigned"
    if not well_formed(signature):
        return f"{what} has a malformed signature {shown(signature)} (not 64 hex digits)"
    data = binding(kind, *names) + canonical_json(_unsigned(value)).encode()
    if not hmac.compare_digest(mac(secret, data), str(signature)):
        return (
            f"{what} does not match its signature (altered after it was signed, or signed "
            "with another secret)"
        )
    return None


# --- manifests ----------------------------------------------------------------------------
def sign_manifest(manifest: Mapping[str, Any], secret: str | None) -> dict[str, Any]:
    """The manifest, signed when there is a secret (as it is, when there is none)."""
    return sign_mapping(manifest, secret, "manifest") if secret else dict(manifest)


def verify_manifest(manifest: Mapping[str, Any], run_id: str, secret: str) -> None:
    """Raise SignatureError unless ``manifest`` is signed with ``secret`` and is the
    manifest of ``run_id`` (a signed manifest copied into another run is refused)."""
    problem = check_mapping(manifest, secret, "manifest", what=f"run '{run_id}': its manifest")
    if problem is not None:
        hint = (
            "; it was not submitted with this CRYSTALLIZE_DIST_SECRET"
            if problem.endswith("unsigned")
            else ""
        )
        raise SignatureError(f"{problem}{hint}; refusing to use it")
    if manifest.get("run_id") != run_id:
        raise SignatureError(
            f"run '{run_id}': its manifest is signed for run {manifest.get('run_id')!a} "
            "(copied from another run); refusing to use it"
        )


# --- run state entries and worker stamps ----------------------------------------------------
def sign_entry(value: Mapping[str, Any], secret: str | None, run_id: str, name: str) -> Any:
    """A mapping of the run's state, signed (bound to the run and the field's name)."""
    return sign_mapping(value, secret, "state", run_id, name) if secret else dict(value)


def verify_entry(value: Any, secret: str, run_id: str, name: str) -> None:
    """Raise SignatureError unless the state entry ``name`` is signed for ``run_id``."""
    what = f"run '{run_id}': its state entry '{name}'"
    problem = (
        check_mapping(value, secret, "state", run_id, name, what=what)
        if isinstance(value, Mapping)
        else f"{what} is not a signed mapping"
    )
    if problem is not None:
        raise SignatureError(f"{problem}; refusing to use it")


def sign_stamp(info: Mapping[str, Any], secret: str | None, run_id: str, node: str) -> Any:
    """A worker's stamp (its versions, drift), signed when the worker has a secret."""
    return sign_mapping(info, secret, "worker", run_id, node) if secret else dict(info)


def verified_stamps(
    workers: Mapping[str, Any], secret: str, run_id: str
) -> tuple[dict[str, Any], list[str]]:
    """The stamps of ``workers`` that verify (without their signatures), and the nodes of
    those that do not."""
    kept: dict[str, Any] = {}
    left_out: list[str] = []
    for node, info in workers.items():
        ok = isinstance(info, Mapping) and not check_mapping(
            info, secret, "worker", run_id, node, what="stamp"
        )
        if ok:
            kept[node] = _unsigned(info)
        else:
            left_out.append(node)
    return kept, sorted(left_out)
