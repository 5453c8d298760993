"""RunStore: the one interface every run store implements (Redis, SQLite).

A store keeps, per run: the immutable manifest, cell records (first write wins), O(1) status
counters, per-cell attempt and duplicate counts, the workers seen, and a small mutable state
(cancelled, resumes). Every implementation passes tests/distributed/test_store_contract.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.distributed.store.compact import RecordTemplate
from crystallize_dist.distributed.store.records import Encoded, RecordCheck


@dataclass(frozen=True)
class CellStart:
    """What starting a cell found: run it when ``attempt`` > 0. ``gone``: the run no longer
    exists (deleted, or its keys expired)."""

    attempt: int = 0
    cancelled: bool = False
    recorded: bool = False
    gone: bool = False


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

    @abstractmethod
    def runs_created_before(self, cutoff: float) -> list[str]:
        """Ids of the runs created before ``cutoff`` (unix seconds)."""

    @abstractmethod
    def delete_run(self, run_id: str) -> bool:
        """Remove every key (every row) of a run; False when there was no such run."""

    def touch(self, run_id: str, blobs: Sequence[str] = ()) -> None:
        """Give the run's keys, and the blobs it uses (its code bundle, its artifacts), their
        full lifetime again (stores whose data does not expire do nothing)."""

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

    @abstractmethod
    def put_ran(
        self, run_id: str, records: Sequence[Mapping[str, Any] | Encoded]
    ) -> list[CellStart]:
        """Start cells that already ran and write their records, in one round trip (one
        transaction): each record is written only if its start allows it (no record yet,
        run not cancelled - see ``advance``), and its start says what happened to it; the
        run's first cell started when the earliest record's timing says. For
        quick cells of a first delivery, run before their starts are counted: if their
        process dies before this call, that delivery is not counted (a redelivery is,
        before each cell runs)."""

    def start_and_put(
        self, run_id: str, record: Mapping[str, Any] | Encoded
    ) -> tuple[bool | None, CellStart]:
        """``put_ran`` for one record: (whether it was written, or None when its start
        refused it; the start). The cell started when its record's timing says."""
        (start,) = self.put_ran(run_id, [record])
        return (True if start.attempt else None), start

    def put_records(
        self, run_id: str, records: Sequence[Mapping[str, Any] | Encoded]
    ) -> list[bool]:
        """Several ``put_record`` calls (implementations write them in one round trip)."""
        return [self.put_record(run_id, r) for r in records]

    @abstractmethod
    def get_record(self, run_id: str, condition: str, replicate: int) -> dict[str, Any] | None:
        """One cell's record (in the full form), or None."""

    @abstractmethod
    def has_records(self, run_id: str, keys: list[str]) -> list[bool]:
        """For each cell key, whether it has a record."""

    @abstractmethod
    def iter_records(
        self,
        run_id: str,
        page_size: int = C.DEFAULT_PAGE_SIZE,
        *,
        steps: bool = True,
        check: RecordCheck | None = None,
        template: RecordTemplate | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every record (in no particular order, in the full form), fetched in pages, with
        ``attempts`` and ``duplicates`` merged in; without ``steps`` the per-step provenance
        is not parsed. ``check`` verifies each stored text before it is decoded
        (``records.decode_page``); ``template`` is the run's (read from its manifest when
        not given)."""

    @abstractmethod
    def delete_records(self, run_id: str, keys: list[str]) -> int:
        """Remove records (``resume --retry-failed``); the counters go down by what each
        record's write added (its stored status, whatever the record holds now) and the cells'
        attempt counts reset, so each gets a fresh ``max_attempts`` budget."""

    @abstractmethod
    def count_records(self, run_id: str) -> int:
        """How many cells have a record (read from the records, not the counters)."""

    # -- counters ------------------------------------------------------------------------------
    @abstractmethod
    def counters(self, run_id: str) -> dict[str, float]:
        """Status counters: ``ok``, ``failed``, ``ok:<cond>``, ``failed:<cond>``, ``attempts``,
        ``duplicates``, ``first_at``, ``last_at`` (O(1) to read)."""

    @abstractmethod
    def attempts(self, run_id: str) -> dict[str, int]:
        """Cell key -> attempts, for cells that started at least once (a diagnostic: it
        reads every record)."""

    # -- workers and state ---------------------------------------------------------------------
    @abstractmethod
    def note_worker(self, run_id: str, host: str, info: Mapping[str, Any]) -> None:
        """Remember a worker (its environment) that ran cells of the run."""

    @abstractmethod
    def node_number(self, run_id: str, node: str) -> int:
        """Worker ``node``'s number in the run, given the first time it is asked for (1, 2,
        ...; 0 when the run is gone): its records name it by number, and its stamp
        (``note_worker``) says which number is its."""

    @abstractmethod
    def workers(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Worker host -> its environment."""

    @abstractmethod
    def note_load_failure(self, run_id: str, node: str, error: str) -> int:
        """Remember that worker ``node`` failed to load the run's experiment (``error``: one
        line, shown by ``status`` and ``wait`` as ``load_errors``); returns how many loads
        of the run have failed in all."""

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

    def template(self, run_id: str) -> RecordTemplate:
        """What the run's records share (read from its manifest and its workers' stamps,
        unverified; see ``compact``)."""
        return RecordTemplate.of(self.manifest(run_id), self.workers(run_id))

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
