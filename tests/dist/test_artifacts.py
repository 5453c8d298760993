"""Shipping artifact files through the run store (dist/artifacts.py)."""

from __future__ import annotations

from pathlib import Path

from crystallize_dist.dist.artifacts import fetch, ship
from crystallize_dist.dist.store import SQLiteStore


def _record(path: Path, relative: str) -> dict[str, object]:
    return {"artifacts": [{"name": path.name, "step": "S", "path": str(path),
                           "relative": relative}]}


def test_ship_then_fetch_writes_the_bytes_under_the_readers_root(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    worker_file = tmp_path / "worker" / "data" / "exp" / "v0" / "a.bin"
    worker_file.parent.mkdir(parents=True)
    worker_file.write_bytes(b"\x00payload")
    rec = _record(worker_file, "exp/v0/a.bin")
    ship(store, rec, limit=1000)
    worker_file.unlink()  # the reader is another machine
    (out,) = fetch(store, [rec], tmp_path / "reader")
    path = Path(out["artifacts"][0]["path"])  # type: ignore[index]
    assert path == (tmp_path / "reader" / "exp" / "v0" / "a.bin").resolve()
    assert path.read_bytes() == b"\x00payload"


def test_a_file_over_the_limit_stays_and_a_path_outside_the_root_is_refused(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 100)
    rec = _record(big, "big.bin")
    ship(store, rec, limit=10)
    art = rec["artifacts"][0]  # type: ignore[index]
    assert art["too_big"] == 100 and "sha256" not in art
    small = tmp_path / "small.bin"
    small.write_bytes(b"ok")
    evil = _record(small, "../../escaped.bin")
    ship(store, evil, limit=10)
    list(fetch(store, [evil], tmp_path / "reader"))
    assert not (tmp_path.parent / "escaped.bin").exists()
    assert evil["artifacts"][0]["path"] == str(small)  # type: ignore[index]
