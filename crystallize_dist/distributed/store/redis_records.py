"""The Redis store's records read back: pages of records with the attempts their notes
counted (``redis_notes``), and one cell's record."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.distributed.store.compact import RecordTemplate
from crystallize_dist.distributed.store.records import RecordCheck, decode_page, decode_record
from crystallize_dist.distributed.store.redis_notes import NotedRecords, split_note


class RecordPages(NotedRecords):
    """The records of the runs of one Redis (see the module docstring)."""

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
