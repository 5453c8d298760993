"""Artifact files in a content-addressed artifact store, off the run store
(distributed/artifact_store.py, CRYSTALLIZE_DIST_ARTIFACT_STORE)."""

from __future__ import annotations

import hashlib
import sys
import uuid
from pathlib import Path

import pytest

from crystallize_dist.config import Settings
from crystallize_dist.distributed.artifact_store import (
    FolderStore,
    FsspecStore,
    open_artifact_store,
)
from crystallize_dist.distributed.artifacts import blob_key, fetch, ship
from crystallize_dist.distributed.store import SQLiteStore
from crystallize_dist.errors import InvalidOptionError


def _record(path: Path, relative: str) -> dict[str, object]:
    return {
        "artifacts": [{"name": path.name, "step": "S", "path": str(path), "relative": relative}]
    }


def _worker_file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "worker" / "data" / "exp" / "v0" / "a.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("form", ["path", "file-url"])
def test_a_shared_folder_holds_the_bytes_and_the_record_their_sha_and_size(
    tmp_path: Path, form: str
) -> None:
    shared_dir = tmp_path / "shared"
    url = str(shared_dir) if form == "path" else shared_dir.as_uri()
    shared = open_artifact_store(url)
    assert isinstance(shared, FolderStore)
    store = SQLiteStore(tmp_path / "store.db")
    data = b"\x00payload" * 1000
    rec = _record(_worker_file(tmp_path, data), "exp/v0/a.bin")
    ship(store, rec, limit=10, shared=shared)  # over the run store's limit: no matter
    art = rec["artifacts"][0]  # type: ignore[index]
    sha = hashlib.sha256(data).hexdigest()
    assert (art["sha256"], art["size"], art["shared"]) == (sha, len(data), True)
    assert "too_big" not in art
    assert store.get_blob(blob_key(sha)) is None  # not in the run store
    assert (shared_dir / sha[:2] / sha).read_bytes() == data
    Path(art["path"]).unlink()  # the reader is another machine
    (out,) = fetch(store, [rec], tmp_path / "reader", shared=open_artifact_store(url))
    path = Path(out["artifacts"][0]["path"])  # type: ignore[index]
    assert path == (tmp_path / "reader" / "exp" / "v0" / "a.bin").resolve()
    assert path.read_bytes() == data
    assert [p.name for p in path.parent.iterdir()] == ["a.bin"]  # no temporary file left


def test_a_reader_without_the_store_or_with_altered_bytes_writes_nothing(tmp_path: Path) -> None:
    shared = FolderStore(tmp_path / "shared", "shared")
    store = SQLiteStore(tmp_path / "store.db")
    rec = _record(_worker_file(tmp_path, b"good bytes"), "exp/v0/a.bin")
    ship(store, rec, limit=1000, shared=shared)
    notes: list[str] = []
    list(fetch(store, [rec], tmp_path / "r1", notes))
    assert notes == [
        "artifact exp/v0/a.bin: its bytes are in an artifact store and "
        "CRYSTALLIZE_DIST_ARTIFACT_STORE is not set here; not written"
    ]
    sha = rec["artifacts"][0]["sha256"]  # type: ignore[index]
    (tmp_path / "shared" / sha[:2] / sha).write_bytes(b"evil bytes")
    notes.clear()
    list(fetch(store, [rec], tmp_path / "r2", notes, shared))
    assert len(notes) == 1 and "its bytes in the artifact store do not hash" in notes[0]
    (tmp_path / "shared" / sha[:2] / sha).unlink()
    notes.clear()
    list(fetch(store, [rec], tmp_path / "r3", notes, shared))
    assert notes == [
        "artifact exp/v0/a.bin: its bytes are not in the artifact store shared; not written"
    ]
    for reader in ("r1", "r2", "r3"):
        folder = tmp_path / reader / "exp" / "v0"
        assert not folder.exists() or list(folder.iterdir()) == []


def test_an_fsspec_url_stores_by_sha_too(tmp_path: Path) -> None:
    url = f"memory://cdist-test-{uuid.uuid4().hex}"
    shared = open_artifact_store(url)
    assert isinstance(shared, FsspecStore)
    store = SQLiteStore(tmp_path / "store.db")
    rec = _record(_worker_file(tmp_path, b"in memory"), "exp/v0/a.bin")
    ship(store, rec, limit=1000, shared=shared)
    ship(store, rec, limit=1000, shared=shared)  # stored once
    sha = rec["artifacts"][0]["sha256"]  # type: ignore[index]
    assert shared.fs.cat_file(f"{shared.base}/{sha[:2]}/{sha}") == b"in memory"
    (out,) = fetch(store, [rec], tmp_path / "reader", shared=open_artifact_store(url))
    assert Path(out["artifacts"][0]["path"]).read_bytes() == b"in memory"  # type: ignore[index]
    shared.fs.rm(shared.base, recursive=True)


def test_an_fsspec_url_without_fsspec_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fsspec", None)  # as if not installed
    with pytest.raises(InvalidOptionError) as err:
        open_artifact_store("s3://bucket/prefix")
    assert str(err.value) == (
        "CRYSTALLIZE_DIST_ARTIFACT_STORE='s3://bucket/prefix': a s3:// store needs fsspec "
        "(pip install 'crystallize-dist[artifacts]'); a shared folder needs nothing"
    )
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(InvalidOptionError, match="needs fsspec"):
        Settings.from_env({"CRYSTALLIZE_DIST_ARTIFACT_STORE": "s3://bucket/prefix"})
    folder = Settings.from_env({"CRYSTALLIZE_DIST_ARTIFACT_STORE": "/mnt/shared"})
    assert folder.env()["CRYSTALLIZE_DIST_ARTIFACT_STORE"] == "/mnt/shared"


def test_an_unknown_fsspec_protocol_is_one_clear_error() -> None:
    with pytest.raises(InvalidOptionError, match="'nosuchproto://x' cannot be opened"):
        open_artifact_store("nosuchproto://x")


def test_the_cli_says_an_fsspec_store_needs_fsspec_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from crystallize_dist.cli import main

    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)  # as if not installed
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(
        main, ["list", "--local"], env={"CRYSTALLIZE_DIST_ARTIFACT_STORE": "s3://bucket/x"}
    )
    assert out.exit_code == 1, out.output
    assert out.output.strip().splitlines() == [
        "error: CRYSTALLIZE_DIST_ARTIFACT_STORE='s3://bucket/x': a s3:// store needs fsspec "
        "(pip install 'crystallize-dist[artifacts]'); a shared folder needs nothing"
    ]
