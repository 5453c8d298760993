"""The Redis store's records read back and deleted: pages of records with the attempts
their notes counted (see ``scripts.py``), one cell's record, and deletions that take back
what each write counted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.distributed.store.compact import RecordTemplate
from crystallize_dist.distributed.store.records import RecordCheck, decode_page, decode_record
from crystallize_dist.distributed.store.redis_client import RedisClient
from crystallize_dist.distributed.store.scripts import DELETE

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


class RecordPages:
    """The records of the runs of one Redis (see the module docstring)."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self.r: Any = client.r
        self._call = client.call
        self._delete = self.r.register_script(DELETE)

    def get(
        self,
        run_id: str,
        condition: str,
        replicate: int,
        template: Callable[[str], RecordTemplate],
    ) -> dict[str, Any] | None:
        field = f"{condition}:{replicate}"
        raw = self._call(lambda: self.r.hget(C.key_records(run_id), field))
        if raw is None:
            return None
        where = f"run '{run_id}' cell {field}"
        text = split_note(raw)[0]
        return decode_record(text, where, key=field, template=template(run_id))

    def has(self, run_id: str, keys: list[str]) -> list[bool]:
        if not keys:
            return []

        def go() -> list[bool]:
            pipe = self.r.pipeline(transaction=False)
            for k in keys:
                pipe.hexists(C.key_records(run_id), k)
            return [bool(x) for x in pipe.execute()]

        return self._call(go)

    def pages(
        self,
        run_id: str,
        page_size: int,
        *,
        steps: bool,
        check: RecordCheck | None,
        template: RecordTemplate,
    ) -> Iterator[dict[str, Any]]:
        """Every record of the run, fetched ``page_size`` at a time (HSCAN), with its
        attempts and duplicate deliveries."""
        raw_dups = self._call(lambda: self.r.hgetall(C.key_duplicates(run_id)))
        dups = {k.decode(): int(v) for k, v in raw_dups.items()}
        cursor = 0
        seen: set[bytes] = set()
        while True:
            with self.client.errors():
                cursor, page = self.r.hscan(C.key_records(run_id), cursor, count=page_size)
            fields = [f for f in page if f not in seen]
            seen.update(fields)
            if fields:
                keys = [f.decode() for f in fields]
                texts, counts = self._counted(run_id, fields, page)
                recs = decode_page(texts, keys, run_id, steps=steps, check=check, template=template)
                for rec, key, n in zip(recs, keys, counts, strict=True):
                    rec["attempts"] = n
                    rec["duplicates"] = dups.get(key, 0)
                    yield rec
            if cursor == 0:
                return

    def _counted(
        self, run_id: str, fields: list[bytes], page: dict[bytes, bytes]
    ) -> tuple[list[bytes], list[int]]:
        """The texts of a page's records and each one's attempts (from its note, or for a
        record written without one, from the attempts hash)."""
        texts: list[bytes] = []
        counts: list[int | None] = []
        for f in fields:
            text, n = split_note(page[f])
            texts.append(text)
            counts.append(n)
        if None not in counts:
            return texts, counts  # type: ignore[return-value]
        stored = self._call(lambda: self.r.hmget(C.key_attempts(run_id), fields))
        return texts, [int(a or 0) if n is None else n for n, a in zip(counts, stored, strict=True)]

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
