"""The store's note of each record's write (see ``scripts.py``): a stored value split into
the record's text and the attempts its note counted, the attempts of a run's cells, and
deletions that take back what each write counted."""

from __future__ import annotations

from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.distributed.store.bulk_scripts import DELETE
from crystallize_dist.distributed.store.redis_client import RedisClient

#: the byte between a stored record's text and the store's note of its write (scripts.py)
NOTE = b"\x1f"


def split_note(raw: bytes) -> tuple[bytes, int | None]:
    """A stored value as (the record's text, the attempts its note counted; None for a
    record written without a note)."""
    text, sep, note = raw.rpartition(NOTE)
    if not sep:
        return raw, None
    try:
        return text, int(note.rpartition(b"\t")[2])
    except ValueError:
        return text, 0


class NotedRecords:
    """The records of the runs of one Redis, by their notes (see the module docstring)."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self.r: Any = client.r
        self._call = client.call
        self._delete = self.r.register_script(DELETE)

    def delete(self, run_id: str, keys: list[str]) -> int:
        if not keys:
            return 0
        run_keys = [
            C.key_records(run_id),
            C.key_counters(run_id),
            C.key_attempts(run_id),
            C.key_status(run_id),
            C.key_node_ids(run_id),
        ]

        def go() -> int:
            pipe = self.r.pipeline(transaction=False)
            for k in keys:
                self._delete(keys=run_keys, args=[k, k.rpartition(":")[0]], client=pipe)
            return sum(int(x) for x in pipe.execute())

        return self._call(go)

    def attempts(self, run_id: str) -> dict[str, int]:
        """Cell key -> attempts of every started cell: recorded cells' from their notes,
        the others' from the attempts hash."""
        out: dict[str, int] = {}
        with self.client.errors():
            for field, raw in self.r.hscan_iter(C.key_records(run_id), count=C.DEFAULT_PAGE_SIZE):
                n = split_note(raw)[1]
                if n:
                    out[field.decode()] = n
            started = self.r.hgetall(C.key_attempts(run_id))
        out.update({k.decode(): int(v) for k, v in started.items() if int(v)})
        return out
