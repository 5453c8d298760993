"""Deterministic zips of an experiment's source, their HMAC signatures, and safe unpacking.

``pack`` walks a folder (minus the ignore list), sorts the entries and writes every one with
the same timestamp and permissions, so the same files give the same bytes on the same
machine. ``unpack`` extracts into a temporary folder next to the destination and renames it
into place (atomic; a concurrent unpack of the same bundle is harmless), refusing entries
that would land outside the destination (zip-slip), links, and archives larger than the
limit once unpacked.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from crystallize_dist import constants as C
from crystallize_dist.distributed.signing import mac, matches
from crystallize_dist.distributed.sources import IGNORE_FILE, ignore_patterns, is_ignored
from crystallize_dist.errors import BundleError

#: Every entry's timestamp (the earliest a zip can hold).
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_MODE = (stat.S_IFREG | 0o644) << 16


@dataclass(frozen=True)
class Packed:
    """A packed bundle: the zip bytes, its sha256, the files' total size and a tree digest
    (sha256 over names and contents, independent of compression)."""

    data: bytes
    sha256: str
    files: int
    total: int
    tree: str


def human(n: float) -> str:
    """``n`` bytes as text (``1.5 MB``)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover - the loop always returns


def collect(root: Path, only: str | None = None) -> list[tuple[str, Path, int]]:
    """``(arcname, path, size)`` of every file under ``root`` that is not ignored, sorted.

    ``only`` restricts the walk to one sub-folder or file of ``root`` (a module bundle packs
    just its top-level package). Folder links are not followed; file links are read; files
    that vanish during the walk are skipped.
    """
    root = root.resolve()
    patterns = ignore_patterns(root)
    start = root / only if only else root
    if start.is_file():
        return [(start.relative_to(root).as_posix(), start, start.stat().st_size)]
    out: list[tuple[str, Path, int]] = []
    for folder, dirs, files in os.walk(start):
        here = Path(folder)
        rel_dir = here.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        dirs[:] = sorted(d for d in dirs if not is_ignored(prefix + d, patterns))
        for name in files:
            rel = prefix + name
            path = here / name
            if is_ignored(rel, patterns):
                continue
            try:
                info = path.stat()
                if path.is_symlink() and not path.resolve().is_relative_to(root):
                    continue  # a link out of the folder: never ship what it points to
            except (FileNotFoundError, RuntimeError):
                continue
            if stat.S_ISREG(info.st_mode):
                out.append((rel, path, info.st_size))
    return sorted(out)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {path} for the code bundle: {exc.strerror}") from exc


def _too_big(root: Path, files: list[tuple[str, Path, int]], total: int, limit: int) -> BundleError:
    biggest = sorted(files, key=lambda f: (-f[2], f[0]))[:3]
    names = ", ".join(f"{rel} ({human(size)})" for rel, _, size in biggest)
    return BundleError(
        f"code bundle of {root} is {human(total)}, over the {human(limit)} limit; biggest "
        f"files: {names}; list what workers do not need in {root / IGNORE_FILE}"
    )


def tree_digest(entries: Iterable[tuple[str, bytes]]) -> str:
    """sha256 over ``name NUL sha256(content)`` lines, in the given (sorted) order."""
    h = hashlib.sha256()
    for name, data in entries:
        h.update(name.encode() + b"\0" + hashlib.sha256(data).hexdigest().encode() + b"\n")
    return h.hexdigest()


def local_tree(root: Path, only: str | None = None, limit: int = C.DEFAULT_BUNDLE_LIMIT) -> str:
    """The tree digest of the files ``pack`` would put in a bundle of ``root`` (no zip made)."""
    files = collect(root, only)
    if sum(size for _, _, size in files) > limit:
        raise BundleError(f"{root} is over the {human(limit)} bundle limit")
    return tree_digest((rel, _read(path)) for rel, path, _ in files)


def _shared_folders() -> set[Path]:
    """Folders never shipped whole: home, ``/`` and the system's shared temporary folders."""
    shared = [
        Path.home(),
        Path("/"),
        Path(tempfile.gettempdir()),
        Path("/tmp"),
        Path("/var/tmp"),
        Path("/dev/shm"),
    ]
    return {p.resolve() for p in shared}


def pack(root: Path, only: str | None = None, limit: int = C.DEFAULT_BUNDLE_LIMIT) -> Packed:
    """A deterministic zip of ``root`` (see module doc); BundleError when the files add up
    to more than ``limit`` bytes."""
    if not root.is_dir():
        raise BundleError(f"cannot bundle {root}: not a folder")
    if root.resolve() in _shared_folders():
        raise BundleError(
            f"refusing to ship {root} as the experiment's code bundle (it is your home, the "
            "root folder or a temporary folder other programs share); put the experiment in "
            "a folder of its own"
        )
    listed = collect(root, only)
    total = sum(size for _, _, size in listed)
    if total > limit:
        raise _too_big(root, listed, total, limit)
    buf = io.BytesIO()
    contents: list[tuple[str, bytes]] = []
    with zipfile.ZipFile(buf, "w") as zf:
        for rel, path, _ in listed:
            data = _read(path)
            contents.append((rel, data))
            info = zipfile.ZipInfo(rel, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = _MODE
            zf.writestr(info, data, compresslevel=6)
    data = buf.getvalue()
    return Packed(data, hashlib.sha256(data).hexdigest(), len(listed), total, tree_digest(contents))


def sign(data: bytes, secret: str) -> str:
    """Hex HMAC-SHA256 of a bundle's bytes keyed with ``secret``."""
    return mac(secret, data)


def signature_ok(data: bytes, secret: str, signature: object) -> bool:
    """Whether ``signature`` is well formed and is ``sign(data, secret)`` (its shape is
    checked first, then it is compared in constant time)."""
    return matches(secret, data, signature)


def zip_tree(data: bytes) -> str:
    """The tree digest of a bundle's files, read from its zip bytes."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = sorted((i for i in zf.infolist() if not i.is_dir()), key=lambda i: i.filename)
        return tree_digest((i.filename, zf.read(i)) for i in infos)


def folder_tree(folder: Path) -> str:
    """The tree digest (``tree_digest``) of every file under an unpacked bundle ``folder``,
    Python's own ``__pycache__`` folders aside; a link or anything but a file is an entry
    no bundle has, so such a folder never matches its bundle."""
    entries: list[tuple[str, bytes]] = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel_dir = Path(here).relative_to(folder).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for name in files:
            path = Path(here) / name
            if path.is_symlink() or not path.is_file():
                entries.append((prefix + name, b"\0not a file"))
            else:
                entries.append((prefix + name, _read(path)))
        entries += [(prefix + d, b"\0a link") for d in dirs if (Path(here) / d).is_symlink()]
    return tree_digest(sorted(entries))


def safe_name(name: str) -> PurePosixPath:
    """A zip entry name as a relative path that stays inside the destination, or BundleError."""
    path = PurePosixPath(name)
    if (
        not name
        or "\\" in name
        or "\0" in name
        or path.is_absolute()
        or ".." in path.parts
        or (path.parts and ":" in path.parts[0])
    ):
        raise BundleError(f"bundle entry {name!r} would be written outside its folder")
    return path


def _check_members(zf: zipfile.ZipFile, limit: int) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    for info in infos:
        safe_name(info.filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise BundleError(f"bundle entry {info.filename!r} is a link; bundles hold files only")
    total = sum(i.file_size for i in infos)
    if total > limit:
        raise BundleError(f"bundle unpacks to {human(total)}, over the {human(limit)} limit")
    return infos


def unpack(
    data: bytes, dest: Path, *, limit: int = C.DEFAULT_BUNDLE_LIMIT, scratch: Path | None = None
) -> Path:
    """Extract the zip ``data`` into ``dest`` (reused when it exists) atomically."""
    if dest.is_dir():
        return dest
    scratch = scratch or dest.parent
    scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name[:16]}-", dir=scratch))
    try:
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as exc:
            raise BundleError(f"bundle for {dest.name} is not a zip archive ({exc})") from exc
        with zf:
            inside = tmp.resolve()
            for info in _check_members(zf, limit):
                target = (tmp / safe_name(info.filename)).resolve()
                if target != inside and inside not in target.parents:
                    raise BundleError(f"bundle entry {info.filename!r} escapes its folder")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not dest.is_dir():  # not a lost race with another process: a real failure
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
