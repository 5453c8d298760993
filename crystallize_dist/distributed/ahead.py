"""Cells run ahead of their starts: a worker runs the quick cells of a first delivery one
after another and writes their records together, one round trip per flush.

A flush (``RunStore.put_ran``) starts each buffered cell and writes its record in one step:
a cell that already has a record is a duplicate delivery (its record is dropped and
counted), a cell of a cancelled run is noted as skipped (its record is dropped), and every
other cell has its attempt counted and its record written first-write-wins. The buffer is
flushed when the message's cells are done, when a cell was not quick, and at least every
``RECORD_FLUSH_SECONDS``: a worker killed meanwhile loses only the records it had not
written, and the message's redelivery runs those cells again with the same seeds (each
start counted before it runs).
"""

from __future__ import annotations

import time
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.distributed.store.base import CellStart, RunStore
from crystallize_dist.distributed.store.records import Encoded


def tally(counts: dict[str, Any], start: CellStart, record: Encoded | None) -> None:
    """Count what became of a started cell: a duplicate, cancelled, run or lost."""
    if start.recorded:
        counts["duplicates"] += 1
    elif start.cancelled:  # no new cell starts once a run is cancelled
        counts["cancelled"] += 1
    elif record is not None:
        error = record.record["error"]
        lost = error and error["type"] == "WorkerLostError"
        counts["lost" if lost else "ran"] += 1


class RecordBuffer:
    """Records of cells of one message that ran before their starts were counted."""

    def __init__(
        self,
        store: RunStore,
        run_id: str,
        counts: dict[str, Any],
        hand_over: list[Encoded] | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.counts = counts
        #: where a flush puts the records when another process writes them (``local``)
        self.hand_over = hand_over
        self.records: list[Encoded] = []
        self.since = 0.0
        #: a flush found the run cancelled (its later cells go the careful way, each start
        #: noting the cell as skipped) or gone (nothing more is written)
        self.cancelled = False
        self.gone = False

    def add(self, record: Encoded) -> None:
        if not self.records:
            self.since = time.monotonic()
        self.records.append(record)

    def due(self) -> bool:
        """Whether the oldest buffered record waited ``RECORD_FLUSH_SECONDS``."""
        return bool(self.records) and time.monotonic() - self.since >= C.RECORD_FLUSH_SECONDS

    def flush(self) -> None:
        """Start the buffered cells and write their records (see the module docstring)."""
        if not self.records:
            return
        records, self.records = self.records, []
        if self.hand_over is not None:
            self.hand_over += records
            return
        for record, start in zip(records, self.store.put_ran(self.run_id, records), strict=True):
            if start.gone:
                self.gone = True
                self.counts["gone"] += 1
                continue
            self.cancelled = self.cancelled or start.cancelled
            tally(self.counts, start, record)
