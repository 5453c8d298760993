"""A content-addressed store for artifact files, off the broker.

``CRYSTALLIZE_DIST_ARTIFACT_STORE`` names it: a folder every worker and reader can reach (a
path or a ``file://`` URL; the base install) or any fsspec URL (``s3://bucket/prefix``,
``gcs://...``, ``memory://...``) when fsspec is installed (``pip install
'crystallize-dist[artifacts]'``). A file is stored once under its sha256
(``<store>/<sha[:2]>/<sha>``), written to a temporary name and renamed, so a reader never
sees half a file; the workers' records keep each file's sha256 and size, and a reader copies
a file by its sha into its own artifact root (``artifacts.fetch``) and checks the sha of
what it got. Files are streamed in blocks of ``ARTIFACT_BLOCK_BYTES``, never held whole.
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
from crystallize_dist.errors import InvalidOptionError


class ArtifactStore(Protocol):
    """Where artifact files are kept by their sha256."""

    url: str

    def put(self, sha: str, source: Path) -> None:
        """Store ``source`` (whose sha256 is ``sha``) unless the store has it already."""

    def get(self, sha: str, target: Path) -> bool:
        """Copy the file of ``sha`` to ``target``; False when the store does not have it."""


def file_digest(path: Path) -> tuple[str, int]:
    """The sha256 (hex) and size in bytes of the file at ``path``, read in blocks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while block := fh.read(C.ARTIFACT_BLOCK_BYTES):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


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
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

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
        self.fs: Any
        self.fs, base = fsspec.core.url_to_fs(url)
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
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return FolderStore(Path(unquote(urlsplit(url).path)), url)
    if len(scheme) < 2:  # a path (a Windows drive letter is not a scheme)
        return FolderStore(Path(url).expanduser(), url)
    try:
        return FsspecStore(url)
    except ImportError:
        raise InvalidOptionError(
            f"{C.ENV_PREFIX}ARTIFACT_STORE={url!a}: a {scheme}:// store needs fsspec "
            "(pip install 'crystallize-dist[artifacts]'); a shared folder needs nothing"
        ) from None
    except (ValueError, OSError) as exc:  # an unknown protocol, a missing driver
        raise InvalidOptionError(
            f"{C.ENV_PREFIX}ARTIFACT_STORE={url!a} cannot be opened: {exc}"
        ) from None


__all__ = ["ArtifactStore", "FolderStore", "FsspecStore", "file_digest", "open_artifact_store"]
