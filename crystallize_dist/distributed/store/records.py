"""How a cell record is stored: its text, and reading it back.

A stored record is two JSON documents joined by a newline: the record without its steps,
then its per-step provenance (compact JSON never holds a raw newline), so a reader that
does not need the steps parses only the first part. Workers write both in the compact form
of ``compact`` (what the run's records share is in its manifest); a record without a
template is written in the full form, which has a ``condition`` key. A worker with a
secret adds a third line, ``hmac-sha256:<64 hex digits>``, the record's signature
(``record_signatures``). A record that cannot be read back is reported, never silently
dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from crystallize_dist.canonical import dumps
from crystallize_dist.distributed.store.compact import RecordTemplate, expand, pack
from crystallize_dist.distributed.store.seed_table import is_seed_table
from crystallize_dist.errors import CorruptRecordError, SignatureError

#: the start of a signed record's last line
SIGNATURE_TAG = "hmac-sha256:"
#: a reader's check of each stored record: given its cell key and its text, the text to
#: decode (its signature checked and taken off); TamperedRecordError when it does not verify
RecordCheck = Callable[[str, str], str]


def cell_key(condition: str, replicate: int) -> str:
    """The field name of a cell: ``<condition>:<replicate>``."""
    return f"{condition}:{replicate}"


def split_key(key: str) -> tuple[str, int]:
    condition, _, rep = key.rpartition(":")
    return condition, int(rep)


_DECODER = json.JSONDecoder()


def split_signature(text: str) -> tuple[str, str | None]:
    """A stored text as (the signed text, its signature or None when it has none)."""
    body, sep, last = text.rpartition("\n")
    if sep and last.startswith(SIGNATURE_TAG):
        return body, last[len(SIGNATURE_TAG) :]
    return text, None


#: what a reader without the run's manifest assumes (records in the full form need none)
_NO_TEMPLATE = RecordTemplate()
#: what expanding a malformed compact record raises
_MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError)


def _parse(raw: str | bytes, steps: bool, key: str, tpl: RecordTemplate | None) -> Any:
    text = raw if isinstance(raw, str) else raw.decode()
    head, sep, tail = text.partition("\n")
    rec = _DECODER.decode(head)
    listed = _DECODER.decode(tail.partition("\n")[0]) if steps and sep else None
    return _full(rec, listed, key, tpl)


def _full(rec: Any, steps: Any, key: str, tpl: RecordTemplate | None) -> Any:
    """A parsed record in the full form: a compact one expanded (its key names its cell)."""
    if type(rec) is dict and "condition" not in rec:
        condition, replicate = split_key(key)
        return expand(rec, condition, replicate, steps, tpl or _NO_TEMPLATE)
    if steps is not None and type(rec) is dict:
        rec["steps"] = steps
    return rec


def _is_record(rec: Any) -> bool:
    """The shape the aggregator relies on: condition, replicate and status of their types;
    seed an int (or null), error and worker mappings (or null), metrics a mapping of lists,
    artifacts a list of mappings with a name and a path."""
    if type(rec) is not dict:
        return False
    get = rec.get
    if type(get("condition")) is not str or type(get("replicate")) is not int:
        return False
    if type(get("status")) is not str or type(get("seed")) not in _SEED_TYPES:
        return False
    if type(get("error")) not in _OPTIONAL_MAP or type(get("worker")) not in _OPTIONAL_MAP:
        return False
    metrics = get("metrics")
    if metrics is not None and not (
        type(metrics) is dict and all(type(v) is list for v in metrics.values())
    ):
        return False
    arts = get("artifacts")
    return not arts or (type(arts) is list and all(_is_artifact(a) for a in arts))


_SEED_TYPES = (int, type(None))
_OPTIONAL_MAP = (dict, type(None))


def _is_artifact(art: Any) -> bool:
    return type(art) is dict and type(art.get("name")) is str and type(art.get("path")) is str


def decode_record(
    raw: str | bytes,
    where: str,
    *,
    steps: bool = True,
    key: str = "",
    template: RecordTemplate | None = None,
) -> dict[str, Any]:
    """Parse a stored record of cell ``key`` (see ``encode``); anything else is
    CorruptRecordError."""
    try:
        rec = _parse(raw, steps, key, template)
    except (*_MALFORMED, UnicodeDecodeError) as exc:
        raise CorruptRecordError(f"{where}: stored record is not valid ({exc})") from None
    if not _is_record(rec):
        raise CorruptRecordError(f"{where}: stored record lacks condition/replicate/status")
    result: dict[str, Any] = rec
    return result


def decode_or_flag(
    raw: str | bytes,
    key: str,
    run_id: str,
    *,
    steps: bool = True,
    template: RecordTemplate | None = None,
) -> dict[str, Any]:
    """A stored record, or - when it is corrupt - a failed-cell record that says so, so one
    damaged record never hides the others (``resume --retry-failed`` re-runs it)."""
    try:
        rec = _parse(raw, steps, key, template)
        if _is_record(rec):
            result: dict[str, Any] = rec
            return result
    except (*_MALFORMED, UnicodeDecodeError):
        pass
    try:  # the slow path, for its message
        return decode_record(
            raw, f"run '{run_id}' cell {key}", steps=steps, key=key, template=template
        )
    except CorruptRecordError as exc:
        return flagged(key, exc)


def flagged(key: str, exc: Exception) -> dict[str, Any]:
    """A failed-cell record in place of a stored one that cannot be used, saying why."""
    try:
        condition, replicate = split_key(key)
    except ValueError:
        condition, replicate = key, -1
    return {
        "condition": condition,
        "replicate": replicate,
        "seed": None,
        "status": "error",
        "metrics": {},
        "error": {"type": type(exc).__name__, "message": str(exc), "traceback": ""},
    }


def decode_page(
    raws: list[Any],
    keys: list[str],
    run_id: str,
    *,
    steps: bool = True,
    check: RecordCheck | None = None,
    template: RecordTemplate | None = None,
) -> list[dict[str, Any]]:
    """Records of a page, parsed as one JSON array (one decoder call instead of one per
    record) and expanded with the run's ``template``; any doubt - a damaged record - falls
    back to record by record. ``check`` (a reader with the secret) verifies each record
    first: one that does not verify is a failed cell (TamperedRecordError) whose text is
    never parsed."""
    if check is None:
        return _page(raws, keys, run_id, steps, template)
    texts: list[str] = []
    good: list[str] = []
    out: list[dict[str, Any] | None] = []
    for raw, key in zip(raws, keys, strict=True):
        try:
            texts.append(check(key, raw if isinstance(raw, str) else raw.decode()))
            good.append(key)
            out.append(None)
        except (SignatureError, UnicodeDecodeError) as exc:
            out.append(flagged(key, exc))
    decoded = iter(_page(texts, good, run_id, steps, template))
    return [rec if rec is not None else next(decoded) for rec in out]


def _page(
    raws: list[Any],
    keys: list[str],
    run_id: str,
    steps: bool,
    template: RecordTemplate | None,
) -> list[dict[str, Any]]:
    try:
        parts: list[str] = []
        for raw in raws:
            head, sep, tail = (raw if isinstance(raw, str) else raw.decode()).partition("\n")
            if not sep:
                raise ValueError("not in the two-part format")
            parts.append(head)
            if steps:
                parts.append(tail.partition("\n")[0])
        values = _DECODER.decode("[" + ",".join(parts) + "]")
        width = 2 if steps else 1
        if len(values) == width * len(raws):
            lists = values[1::2] if steps else [None] * len(raws)
            recs = [
                _full(rec, listed, key, template)
                for rec, listed, key in zip(values[::width], lists, keys, strict=True)
            ]
            if all(_is_record(r) for r in recs):
                return recs
    except (*_MALFORMED, UnicodeDecodeError):
        pass
    return [
        decode_or_flag(raw, key, run_id, steps=steps, template=template)
        for raw, key in zip(raws, keys, strict=True)
    ]


def decode_manifest(raw: str | bytes, run_id: str) -> dict[str, Any]:
    """A stored manifest, with the shape every reader relies on (a plan, an experiment, a
    seed table, options); anything else is a one-line CorruptRecordError."""
    where = f"manifest of run '{run_id}'"
    data = decode_json(raw, where)
    problem = _manifest_problem(data)
    if problem:
        raise CorruptRecordError(f"{where} {problem}; it cannot be read")
    manifest: dict[str, Any] = data
    return manifest


def _manifest_problem(data: Any) -> str | None:
    if type(data) is not dict:
        return "is not a JSON object"
    plan = data.get("plan")
    if type(plan) is not dict or not all(
        type(plan.get(k)) is int for k in ("replicates", "master_seed")
    ):
        return "has no plan with integer replicates and master_seed"
    if not all(type(t) is str for t in plan.get("treatments") or ()):
        return "has treatments that are not names"
    if type(data.get("experiment")) is not dict:
        return "has no experiment"
    if type(data.get("options", {})) is not dict:
        return "has a malformed options"
    return None if is_seed_table(data.get("seeds", [])) else "has a malformed seeds"


def decode_json(raw: str | bytes | None, where: str) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptRecordError(f"{where}: stored value is not valid JSON ({exc})") from None


class Encoded(NamedTuple):
    """A record with its stored text, so a worker encodes each record once."""

    record: Mapping[str, Any]
    text: str


def encode(record: Mapping[str, Any] | Encoded, template: RecordTemplate | None = None) -> Encoded:
    """A record's stored text: ``<record without steps as JSON>\\n<steps as JSON>``, in the
    compact form of ``compact`` when the run's ``template`` is given (and can say it).

    Compact JSON never holds a raw newline, so readers that do not need the per-step
    provenance (big results) split at the first newline and parse only the first part.
    """
    if isinstance(record, Encoded):
        return record
    if template is not None:
        text = pack(record, template)
        if text is not None:
            return Encoded(record, text)
    core = {k: v for k, v in record.items() if k != "steps"}
    return Encoded(record, dumps(core) + "\n" + dumps(record.get("steps", [])))
