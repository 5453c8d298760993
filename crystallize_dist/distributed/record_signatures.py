"""Signed cell records: a worker with the secret signs the text it stores; a reader with the
secret verifies every record while it decodes a page.

A record's signature is the HMAC of its stored text bound to the run id and the cell key
(``signing.binding("record", run_id, key)``), written as the text's last line (see
``store.records``). A record moved to another cell or another run, altered by one byte,
unsigned, or signed with another secret does not verify: the reader reports it as a
failed cell (TamperedRecordError) and never parses its numbers.
"""

from __future__ import annotations

from typing import Any

from crystallize_dist.distributed.signing import binding, mac, matches, shown, well_formed
from crystallize_dist.distributed.store.records import (
    SIGNATURE_TAG,
    Encoded,
    cell_key,
    split_signature,
)
from crystallize_dist.errors import TamperedRecordError


def sign_record(encoded: Encoded, secret: str, run_id: str) -> Encoded:
    """``encoded`` with its signature line (one HMAC over the text already encoded)."""
    rec = encoded.record
    key = cell_key(rec["condition"], rec["replicate"])
    signature = mac(secret, binding("record", run_id, key) + encoded.text.encode())
    return Encoded(rec, f"{encoded.text}\n{SIGNATURE_TAG}{signature}")


class RecordVerifier:
    """A reader's check of every record of one run (a ``store.records.RecordCheck``); it
    counts the records it verified and names those it did not."""

    def __init__(self, secret: str, run_id: str) -> None:
        self.secret = secret
        self.run_id = run_id
        self.verified = 0
        self.tampered: list[str] = []

    def __call__(self, key: str, text: str) -> str:
        body, signature = split_signature(text)
        problem = None
        if signature is None:
            problem = "is unsigned"
        elif not well_formed(signature):
            problem = f"has a malformed signature {shown(signature)} (not 64 hex digits)"
        elif not matches(
            self.secret, binding("record", self.run_id, key) + body.encode(), signature
        ):
            problem = (
                "does not match its signature (altered, moved from another cell or run, or "
                "signed with another secret)"
            )
        if problem is not None:
            self.tampered.append(key)
            raise TamperedRecordError(
                f"run '{self.run_id}' cell {key}: the stored record {problem}; its numbers "
                "are not used"
            )
        self.verified += 1
        return body

    def summary(self) -> dict[str, Any]:
        """What was verified, for the result's provenance (``signatures``)."""
        return {"records_verified": self.verified, "records_tampered": sorted(self.tampered)}
