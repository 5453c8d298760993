"""Signatures: manifests, run state entries, worker stamps and records, each bound to what it
is for; malformed signatures are SignatureErrors (never TypeErrors); a reader decodes a page
of records, verifying each, and flags the ones that do not verify."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crystallize_dist.distributed.record_signatures import RecordVerifier, sign_record
from crystallize_dist.distributed.signing import (
    check_mapping,
    mac,
    matches,
    sign_entry,
    sign_manifest,
    sign_stamp,
    verified_stamps,
    verify_entry,
    verify_manifest,
)
from crystallize_dist.distributed.store.records import decode_page, decode_record, encode
from crystallize_dist.errors import SignatureError, TamperedRecordError

SECRET = "unit-secret"
RUN = "20260101-000000-abcdef"


def manifest() -> dict[str, Any]:
    return {"run_id": RUN, "seeds": [1, 2], "options": {"bundle": {"relpath": "exp.py"}}}


def test_a_signed_manifest_verifies_and_any_change_does_not() -> None:
    signed = sign_manifest(manifest(), SECRET)
    verify_manifest(json.loads(json.dumps(signed)), RUN, SECRET)  # as read back
    assert sign_manifest(manifest(), None) == manifest()  # no secret: nothing added
    changed = json.loads(json.dumps(signed))
    changed["options"]["bundle"]["relpath"] = "decoy.py"
    with pytest.raises(SignatureError, match="does not match its signature"):
        verify_manifest(changed, RUN, SECRET)
    with pytest.raises(SignatureError, match="does not match"):
        verify_manifest(signed, RUN, "another secret")
    with pytest.raises(SignatureError, match="unsigned"):
        verify_manifest(manifest(), RUN, SECRET)
    with pytest.raises(SignatureError, match=f"signed for run '{RUN}'"):
        verify_manifest(signed, "20260101-000000-000000", SECRET)


@pytest.mark.parametrize("bad", ["é" * 64, "0" * 63, "A" * 64, 64, None, ["0" * 64]])
def test_a_malformed_signature_is_a_signature_error(bad: Any) -> None:
    value = {**sign_manifest(manifest(), SECRET), "signature": bad}
    with pytest.raises(SignatureError, match=r"malformed signature|unsigned"):
        verify_manifest(value, RUN, SECRET)
    assert not matches(SECRET, b"data", bad)


def test_state_entries_and_stamps_are_bound_to_their_run_and_name() -> None:
    entry = sign_entry({"resumed_with": "abc"}, SECRET, RUN, "allow_drift")
    verify_entry(entry, SECRET, RUN, "allow_drift")
    with pytest.raises(SignatureError, match="state entry 'allow_drift'"):
        verify_entry(entry, SECRET, "20260101-000000-000000", "allow_drift")
    with pytest.raises(SignatureError, match="not a signed mapping"):
        verify_entry("true", SECRET, RUN, "allow_drift")
    stamp = sign_stamp({"python": "3.11"}, SECRET, RUN, "w1@host")
    workers = {"w1@host": stamp, "w2@host": stamp, "evil": {"python": "x"}, "odd": "text"}
    kept, left_out = verified_stamps(workers, SECRET, RUN)
    assert kept == {"w1@host": {"python": "3.11"}}
    # sorted by node; w2 carries w1's stamp, which is bound to its node
    assert left_out == ["evil", "odd", "w2@host"]
    assert check_mapping(stamp, SECRET, "worker", RUN, "w1@host", what="x") is None


def record(replicate: int, value: float) -> dict[str, Any]:
    return {
        "condition": "baseline",
        "replicate": replicate,
        "seed": 7,
        "status": "ok",
        "metrics": {"x": [value]},
        "error": None,
        "steps": [{"step": "S"}],
    }


def test_records_are_signed_over_their_text_and_bound_to_run_and_cell() -> None:
    texts = [sign_record(encode(record(r, r / 10)), SECRET, RUN).text for r in range(4)]
    assert all(t.count("\n") == 2 for t in texts) and texts[0].rsplit("\n", 1)[1][:12] == (
        "hmac-sha256:"
    )
    texts[1] = texts[1].replace("0.1", "9.9")  # a number changed
    texts[2] = texts[0].replace('"replicate":0', '"replicate":2')  # moved to another cell
    texts[3] = texts[3].rpartition("\n")[0]  # its signature taken off
    keys = [f"baseline:{r}" for r in range(4)]
    check = RecordVerifier(SECRET, RUN)
    recs = decode_page(texts, keys, RUN, check=check)
    assert recs[0]["metrics"] == {"x": [0.0]} and recs[0]["steps"] == [{"step": "S"}]
    for rec in recs[1:]:
        assert rec["status"] == "error" and rec["error"]["type"] == "TamperedRecordError"
        assert "numbers are not used" in rec["error"]["message"] and rec["metrics"] == {}
    assert check.summary() == {
        "records_verified": 1,
        "records_tampered": ["baseline:1", "baseline:2", "baseline:3"],
    }
    assert "unsigned" in recs[3]["error"]["message"]
    with pytest.raises(TamperedRecordError, match="moved from another cell or run"):
        RecordVerifier(SECRET, "20260101-000000-000000")("baseline:0", texts[0])
    # a reader without the secret reads signed records as before
    plain = decode_page(texts[:1], keys[:1], RUN)
    assert plain[0]["steps"] == [{"step": "S"}]
    assert decode_record(texts[0], "here")["metrics"] == {"x": [0.0]}


def test_a_record_of_the_wrong_shape_is_flagged_not_folded() -> None:
    """Without the secret a record cannot be verified, but one whose shape the aggregator
    cannot use (metrics that are not lists, a seed that is text) is a failed cell."""
    bad = [
        {**record(0, 1.0), "metrics": {"x": 1.0}},
        {**record(1, 1.0), "seed": "7"},
        {**record(2, 1.0), "artifacts": [{"name": 1, "path": "/x"}]},
        {**record(3, 1.0), "error": "boom"},
    ]
    texts = [encode(r).text for r in bad]
    recs = decode_page(texts, [f"baseline:{i}" for i in range(4)], RUN)
    assert {r["error"]["type"] for r in recs} == {"CorruptRecordError"}


def test_mac_is_hmac_sha256() -> None:
    import hmac

    assert mac(SECRET, b"abc") == hmac.new(SECRET.encode(), b"abc", "sha256").hexdigest()
