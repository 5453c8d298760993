"""A content-addressed store for artifact files, off the broker.

``CRYSTALLIZE_DIST_ARTIFACT_STORE`` names it: a folder every worker and reader can reach (a
path or ``file://`` URL) or, with fsspec installed (``pip install 'crystallize-dist[artifacts]'``),
any fsspec URL (``s3://bucket/prefix``, ``memory://...``). A file is stored once at
``<store>/<sha[:2]>/<sha256>``, written to a temporary name and renamed; records keep each
file's sha256 and size, and a reader copies a file by its sha into its own artifact root
(``artifacts.fetch``) and checks what it got. Files are streamed, never held whole.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from crystallize_dist import constants as C
from crystallize_dist.config import needs_fsspec
from crystallize_dist.errors import InvalidOptionError


class ArtifactStore(Protocol):
    """Where artifact files are kept by their sha256: ``put`` stores a file unless the store
    has it already, ``get`` copies one to ``target`` (False when the store does not have it)."""

    url: str

    def put(self, sha: str, source: Path) -> None: ...
    def get(self, sha: str, target: Path) -> bool: ...


def file_digest(path: Path) -> tuple[str, int]:
    """The sha256 (hex) and size in bytes of the file at ``path``, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(C.ARTIFACT_BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest(), path.stat().st_size


def _name(sha: str) -> str:
    return C.ARTIFACT_STORE_LAYOUT.format(sha2=sha[:2], sha=sha)


class FolderStore:
    """A folder (local, NFS, a mounted share) as an artifact store."""

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url

    def put(self, sha: str, source: Path) -> None:
        target = self.root / _name(sha)
        if target.is_file() and target.stat().st_size == source.stat().st_size:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, C.ARTIFACT_BLOCK_BYTES)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)  # left only when the copy failed

    def get(self, sha: str, target: Path) -> bool:
        source = self.root / _name(sha)
        try:
            with source.open("rb") as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, C.ARTIFACT_BLOCK_BYTES)
        except FileNotFoundError:
            return False
        return True


class FsspecStore:
    """Any fsspec file system (object stores, ``memory://``, ...) as an artifact store."""

    def __init__(self, url: str) -> None:
        import fsspec

        self.url = url
        fs, base = fsspec.core.url_to_fs(url)
        self.fs: Any = fs
        self.base = str(base).rstrip("/")

    def put(self, sha: str, source: Path) -> None:
        path = f"{self.base}/{_name(sha)}"
        if self.fs.exists(path) and self.fs.size(path) == source.stat().st_size:
            return
        self.fs.makedirs(f"{self.base}/{sha[:2]}", exist_ok=True)
        self.fs.put_file(str(source), path)

    def get(self, sha: str, target: Path) -> bool:
        path = f"{self.base}/{_name(sha)}"
        if not self.fs.exists(path):
            return False
        self.fs.get_file(path, str(target))
        return True


def open_artifact_store(url: str | None) -> ArtifactStore | None:
    """The artifact store ``url`` names (see the module docstring), or None for none.
    Raises InvalidOptionError naming the URL when it needs fsspec and fsspec is missing."""
    if not url:
        return None
    if (scheme := urlsplit(url).scheme) == "file":
        return FolderStore(Path(unquote(urlsplit(url).path)), url)
    if len(scheme) < 2:  # a path (a Windows drive letter is not a scheme)
        return FolderStore(Path(url).expanduser(), url)
    try:
        return FsspecStore(url)
    except ImportError:
        raise needs_fsspec(url) from None
    except (ValueError, OSError) as exc:  # an unknown protocol, a missing driver
        what = f"{C.ENV_PREFIX}ARTIFACT_STORE={url!a}"
        raise InvalidOptionError(f"{what} cannot be opened: {exc}") from None
