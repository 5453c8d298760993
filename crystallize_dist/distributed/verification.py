"""What a reader of a run checks before it uses anything the store holds.

With ``CRYSTALLIZE_DIST_SECRET`` set, a reader (``result``, ``submit --wait``,
``CeleryExecution``) refuses a run whose manifest does not verify, verifies every record
(one that does not is a failed cell, TamperedRecordError, its numbers unused), leaves out
the worker stamps and the ``allow_drift`` entry that do not verify, and says what it
verified in the result's ``provenance["signatures"]``. Without a secret nothing can be
verified, and the provenance says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.distributed.record_signatures import RecordVerifier
from crystallize_dist.distributed.signing import verified_stamps, verify_entry, verify_manifest
from crystallize_dist.errors import SignatureError

#: the fields of a run's state that are signed (by ``resume --allow-drift``)
SIGNED_STATE = ("allow_drift",)


class RunVerification:
    """The checks of one run by one reader, and what they found (see the module doc)."""

    def __init__(self, secret: str | None, run_id: str) -> None:
        self.secret = secret
        self.run_id = run_id
        #: the reader's check of each record (``RunStore.iter_records(check=...)``)
        self.records = RecordVerifier(secret, run_id) if secret else None
        self.notes: list[str] = []
        self.left_out: list[str] = []

    def manifest(self, manifest: Mapping[str, Any]) -> None:
        """Raise SignatureError unless the manifest verifies (nothing with no secret)."""
        if self.secret:
            verify_manifest(manifest, self.run_id, self.secret)

    def workers(self, workers: Mapping[str, Any]) -> dict[str, Any]:
        """The worker stamps that verify (all of them with no secret)."""
        if not self.secret:
            return dict(workers)
        kept, left_out = verified_stamps(workers, self.secret, self.run_id)
        if left_out:
            self.left_out += [f"worker stamp {node!a}" for node in left_out]
            self.notes.append(
                f"{len(left_out)} worker stamp(s) do not verify and are left out of the "
                f"provenance: {', '.join(ascii(n) for n in left_out[:3])}"
            )
        return kept

    def state(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """The run's state without the signed entries that do not verify."""
        kept = dict(state)
        for name in SIGNED_STATE:
            if self.secret and name in kept:
                try:
                    verify_entry(kept[name], self.secret, self.run_id, name)
                except SignatureError as exc:
                    del kept[name]
                    self.left_out.append(f"state entry '{name}'")
                    self.notes.append(f"{exc} (left out of the provenance)")
        return kept

    def summary(self) -> dict[str, Any]:
        """``provenance["signatures"]``: what was verified, and what did not verify."""
        if self.records is None:
            return {"verified": False, "why": f"no {C.ENV_PREFIX}SECRET where it was read"}
        return {
            "verified": True,
            "manifest": "verified",
            **self.records.summary(),
            "left_out": self.left_out,
        }


def signature_line(signatures: Mapping[str, Any]) -> str:
    """One line for people: what a result's ``provenance["signatures"]`` says."""
    if not signatures.get("verified"):
        return f"signatures: not verified ({signatures.get('why', 'no secret')})"
    verified = int(signatures.get("records_verified", 0))
    tampered = list(signatures.get("records_tampered", ()))
    line = f"signatures: manifest verified; {verified} of {verified + len(tampered)} records"
    line += " verified"
    if tampered:
        shown = ", ".join(tampered[:5]) + (" ..." if len(tampered) > 5 else "")
        line += f"; {len(tampered)} did not verify ({shown}): counted as failed cells"
    if signatures.get("left_out"):
        line += f"; left out: {', '.join(signatures['left_out'][:3])}"
    return line
