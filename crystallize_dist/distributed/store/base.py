"""RunStore: the one interface every run store implements (Redis, SQLite).

A store keeps, per run: the immutable manifest, cell records (first write wins), O(1) status
counters, per-cell attempt and duplicate counts, the workers seen, and a small mutable state
(cancelled, resumes). Every implementation passes tests/distributed/test_store_contract.py.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.core.canonical import dumps
from crystallize_dist.errors import CorruptRecordError


def cell_key(condition: str, replicate: int) -> str:
    """The field name of a cell: ``<condition>:<replicate>``."""
    return f"{condition}:{replicate}"


def split_key(key: str) -> tuple[str, int]:
    condition, _, rep = key.rpartition(":")
    return condition, int(rep)


_DECODER = json.JSONDecoder()


def _parse(raw: str | bytes, steps: bool) -> Any:
    text = raw if isinstance(raw, str) else raw.decode()
    head, sep, tail = text.partition("\n")
    rec = _DECODER.decode(head)
    if steps and sep and isinstance(rec, dict):
        rec["steps"] = _DECODER.decode(tail)
    return rec


def _is_record(rec: Any) -> bool:
    return isinstance(rec, dict) and "condition" in rec and "replicate" in rec and "status" in rec


def decode_record(raw: str | bytes, where: str, *, steps: bool = True) -> dict[str, Any]:
    """Parse a stored record (see ``encode``); anything else is CorruptRecordError."""
    try:
        rec = _parse(raw, steps)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptRecordError(f"{where}: stored record is not valid JSON ({exc})") from None
    if not _is_record(rec):
        raise CorruptRecordError(f"{where}: stored record lacks condition/replicate/status")
    result: dict[str, Any] = rec
    return result


def decode_or_flag(
    raw: str | bytes, key: str, run_id: str, *, steps: bool = True
) -> dict[str, Any]:
    """A stored record, or - when it is corrupt - a failed-cell record that says so, so one
    damaged record never hides the others (``resume --retry-failed`` re-runs it)."""
    try:
        rec = _parse(raw, steps)
        if _is_record(rec):
            result: dict[str, Any] = rec
            return result
    except (ValueError, UnicodeDecodeError):
        pass
    try:  # the slow path, for its message
        return decode_record(raw, f"run '{run_id}' cell {key}", steps=steps)
    except CorruptRecordError as exc:
        condition, replicate = split_key(key)
        return {
            "condition": condition,
            "replicate": replicate,
            "seed": None,
            "status": "error",
            "metrics": {},
            "error": {"type": "CorruptRecordError", "message": str(exc), "traceback": ""},
        }


def decode_page(
    raws: list[Any], keys: list[str], run_id: str, *, steps: bool = True
) -> list[dict[str, Any]]:
    """Records of a page, parsed as one JSON array (one decoder call instead of one per
    record); any doubt - a legacy or damaged record - falls back to record by record."""
    try:
        parts: list[str] = []
        for raw in raws:
            head, sep, tail = (raw if isinstance(raw, str) else raw.decode()).partition("\n")
            if not sep:
                raise ValueError("not in the two-part format")
            parts.append(head)
            if steps:
                parts.append(tail)
        values = _DECODER.decode("[" + ",".join(parts) + "]")
        width = 2 if steps else 1
        if len(values) == width * len(raws):
            recs = values[::width]
            if all(_is_record(r) for r in recs):
                if steps:
                    for rec, step_list in zip(recs, values[1::2], strict=True):
                        rec["steps"] = step_list
                return list(recs)
    except (ValueError, UnicodeDecodeError):
        pass
    return [
        decode_or_flag(raw, key, run_id, steps=steps) for raw, key in zip(raws, keys, strict=True)
    ]


def decode_json(raw: str | bytes | None, where: str) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptRecordError(f"{where}: stored value is not valid JSON ({exc})") from None


@dataclass(frozen=True)
class CellStart:
    """What starting a cell found: run it when ``attempt`` > 0."""

    attempt: int = 0
    cancelled: bool = False
    recorded: bool = False


@dataclass(frozen=True)
class Encoded:
    """A record with its JSON text, so a worker encodes each record once."""

    record: Mapping[str, Any]
    text: str


def encode(record: Mapping[str, Any] | Encoded) -> Encoded:
    """A record's stored text: ``<record without steps as JSON>\\n<steps as JSON>``.

    Compact JSON never holds a raw newline, so readers that do not need the per-step
    provenance (big results) split at the first newline and parse only the first part.
    """
    if isinstance(record, Encoded):
        return record
    core = {k: v for k, v in record.items() if k != "steps"}
    return Encoded(record, dumps(core) + "\n" + dumps(record.get("steps", [])))


class RunStore(ABC):
    """Where runs live. Methods raise RunNotFoundError for an unknown run id."""

    url: str = ""

    # -- runs --------------------------------------------------------------------------------
    @abstractmethod
    def create_run(self, run_id: str, manifest: Mapping[str, Any]) -> None:
        """Store a new run's manifest (an existing run id is an error)."""

    @abstractmethod
    def manifest(self, run_id: str) -> dict[str, Any]:
        """The run's manifest."""

    @abstractmethod
    def run_ids(self, limit: int = 50) -> list[str]:
        """Run ids, newest first."""

    @abstractmethod
    def exists(self, run_id: str) -> bool:
        """Whether a run with this id exists."""

    # -- records ---------------------------------------------------------------------------
    @abstractmethod
    def advance(
        self, run_id: str, record: Mapping[str, Any] | Encoded | None, next_key: str | None
    ) -> tuple[bool | None, CellStart | None]:
        """In one round trip: write ``record`` (if given) and start cell ``next_key`` (if
        given). A worker running a batch writes each cell's record and starts the next one
        together.

        The write is first-write-wins and updates the counters; it returns True when written,
        False when the cell already had a record (a duplicate, counted). The start, read
        atomically, says whether the cell already has a record (a duplicate delivery,
        counted; do not run it), whether the run is cancelled (do not run it), or else counts
        the attempt and returns its number."""

    def put_record(self, run_id: str, record: Mapping[str, Any] | Encoded) -> bool:
        """Write a cell record unless the cell has one (see ``advance``)."""
        return bool(self.advance(run_id, record, None)[0])

    def start_cell(self, run_id: str, key: str) -> CellStart:
        """Start cell ``key`` (see ``advance``)."""
        start = self.advance(run_id, None, key)[1]
        assert start is not None
        return start

    def start_and_put(
        self, run_id: str, record: Mapping[str, Any] | Encoded, started: float
    ) -> tuple[bool | None, CellStart]:
        """Start a cell that already ran (at ``started``) and write its record, in one round
        trip: the record is written only if the start allows it (no record yet, run not
        cancelled - see ``advance``). For a quick cell's first delivery: if its process dies
        while it runs, that delivery is not counted (its redelivery is, before it runs)."""
        enc = encode(record)
        start = self.start_cell(run_id, f"{enc.record['condition']}:{enc.record['replicate']}")
        return (self.put_record(run_id, enc) if start.attempt else None), start

    def start_cell_soon(self, run_id: str, key: str) -> Callable[[], CellStart]:
        """Send the start of cell ``key`` now and return a function that reads its answer
        later, so a cell can run while the start is on its way (one round trip saved per
        one-cell task). Stores that cannot pipeline this way just start the cell now."""
        start = self.start_cell(run_id, key)
        return lambda: start

    def put_records(self, run_id: str, records: list[Mapping[str, Any]]) -> list[bool]:
        """Several ``put_record`` calls (implementations batch them)."""
        return [self.put_record(run_id, r) for r in records]

    @abstractmethod
    def get_record(self, run_id: str, condition: str, replicate: int) -> dict[str, Any] | None:
        """One cell's record, or None."""

    @abstractmethod
    def has_records(self, run_id: str, keys: list[str]) -> list[bool]:
        """For each cell key, whether it has a record."""

    @abstractmethod
    def iter_records(
        self, run_id: str, page_size: int = C.DEFAULT_PAGE_SIZE, *, steps: bool = True
    ) -> Iterator[dict[str, Any]]:
        """Every record (in no particular order), fetched in pages, with ``attempts`` and
        ``duplicates`` merged in; without ``steps`` the per-step provenance is not parsed."""

    @abstractmethod
    def delete_records(self, run_id: str, keys: list[str]) -> int:
        """Remove records (``resume --retry-failed``); counters are adjusted and the cells'
        attempt counts reset, so each gets a fresh ``max_attempts`` budget."""

    # -- counters ------------------------------------------------------------------------------
    @abstractmethod
    def counters(self, run_id: str) -> dict[str, float]:
        """Status counters: ``ok``, ``failed``, ``ok:<cond>``, ``failed:<cond>``, ``attempts``,
        ``duplicates``, ``first_at``, ``last_at`` (O(1) to read)."""

    @abstractmethod
    def attempts(self, run_id: str) -> dict[str, int]:
        """Cell key -> attempts, for cells that started at least once."""

    # -- workers and state ---------------------------------------------------------------------
    @abstractmethod
    def note_worker(self, run_id: str, host: str, info: Mapping[str, Any]) -> None:
        """Remember a worker (its environment) that ran cells of the run."""

    @abstractmethod
    def workers(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Worker host -> its environment."""

    @abstractmethod
    def update_state(self, run_id: str, **fields: Any) -> None:
        """Set fields of the run's mutable state (JSON values)."""

    @abstractmethod
    def state(self, run_id: str) -> dict[str, Any]:
        """The run's mutable state."""

    @abstractmethod
    def take_skipped(self, run_id: str) -> set[str]:
        """The cells a start refused because the run was cancelled, forgotten as they are
        returned (``resume`` sends them again)."""

    def cancelled(self, run_id: str) -> bool:
        return bool(self.state(run_id).get("cancelled"))

    # -- code bundles ----------------------------------------------------------------------
    def put_blob(self, key: str, data: bytes) -> None:
        """Store a content-addressed blob (code bundles)."""
        raise NotImplementedError

    def get_blob(self, key: str) -> bytes | None:
        raise NotImplementedError

    def ping(self) -> None:
        """Raise StoreError when the store cannot be reached."""

    def close(self) -> None:
        """Release connections."""
