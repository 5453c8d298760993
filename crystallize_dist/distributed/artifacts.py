"""Artifacts across machines.

A cell's record lists the artifact files it wrote, with their paths on the machine that
ran it. A Celery worker also ships each file's bytes through the run store (content-
addressed by sha256, like code bundles, and kept as long as the run); whoever reads the
result - ``submit --wait``, ``result``, ``CeleryExecution`` - writes them under its own
artifact root, at the same place relative to it (unless that file already has those
bytes), and the result points there: all of a run's files in one place, whichever
workers wrote them. A file over the store's value limit stays on the worker (its record says so).

The root is always the reader's own (``result --artifacts-dir``, default ``./data``, or
the reader's experiment's ArtifactPlugin); a run's manifest has no say in it. A file is
written only at a relative path that stays inside that root, and only with bytes that hash
to the sha256 its record names; anything else is left out, with a note saying why.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from crystallize_dist.distributed.artifact_store import ArtifactStore, file_digest
from crystallize_dist.distributed.store.base import RunStore

_log = logging.getLogger("crystallize_dist.worker")


def blob_key(sha: str) -> str:
    return f"artifact-{sha}"


def ship(
    store: RunStore, record: Mapping[str, Any], limit: int, shared: ArtifactStore | None = None
) -> None:
    """Put every artifact file ``record`` lists into the ``shared`` artifact store, or else
    its bytes into ``store``, noting each one's sha256 and size in the record; without an
    artifact store, a file over ``limit`` bytes is marked ``"too_big"`` instead."""
    for art in record.get("artifacts") or ():
        path = Path(art["path"])
        if shared is not None:
            try:
                sha, size = file_digest(path)
                shared.put(sha, path)
            except OSError as exc:
                _log.warning(
                    "artifact %s cannot be put into the artifact store %s (%s): it stays "
                    "at %s on this machine",
                    art["name"],
                    shared.url,
                    exc,
                    art["path"],
                )
                continue
            art.update(sha256=sha, size=size, shared=True)
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if len(data) > limit:
            art["too_big"] = len(data)
            _log.warning(
                "artifact %s (%d bytes) is over the %d-byte store limit: it stays "
                "at %s on this machine (CRYSTALLIZE_DIST_ARTIFACT_STORE names a store "
                "for big files)",
                art["name"],
                len(data),
                limit,
                art["path"],
            )
            continue
        sha = hashlib.sha256(data).hexdigest()
        store.put_blob(blob_key(sha), data)
        art.update(sha256=sha, size=len(data))


_SHA = re.compile(r"\A[0-9a-f]{64}\Z")


def _same(path: Path, sha: str) -> bool:
    try:
        return file_digest(path)[0] == sha
    except OSError:
        return False


def safe_relative(relative: Any) -> PurePosixPath | None:
    """``relative`` as a path that stays below a root, or None: relative, no ``..``, no
    drive, no backslash or NUL, not empty."""
    if not isinstance(relative, str) or not relative or "\\" in relative or "\0" in relative:
        return None
    path = PurePosixPath(relative)
    if not path.parts or path.is_absolute() or ".." in path.parts or ":" in path.parts[0]:
        return None
    return path


def _write(
    store: RunStore,
    base: Path,
    art: dict[str, Any],
    notes: list[str],
    shared: ArtifactStore | None,
) -> None:
    """Write one shipped artifact under ``base`` (see the module docstring)."""
    sha, relative = art.get("sha256"), safe_relative(art.get("relative"))
    if relative is None or not isinstance(sha, str) or not _SHA.match(sha):
        notes.append(
            f"artifact {ascii(art.get('relative'))[:80]}: its path or sha256 is not valid; "
            "not written"
        )
        return
    target = (base / relative).resolve()
    if not target.is_relative_to(base) or target == base:  # never outside the root
        notes.append(f"artifact {relative}: it would land outside {base}; not written")
        return
    if not _same(target, sha):
        # fetched beside the root and checked before any folder is made for it
        base.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=base, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                missing = _copy(store, sha, art, fh, Path(tmp), shared)
            if missing is not None:
                notes.append(f"artifact {relative}: {missing}; not written")
                return
            if not _same(Path(tmp), sha):
                where = "artifact store" if art.get("shared") is True else "store"
                notes.append(
                    f"artifact {relative}: its bytes in the {where} do not hash to its "
                    f"sha256 {sha[:12]} (altered); not written"
                )
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
    art["path"] = str(target)


def _copy(
    store: RunStore,
    sha: str,
    art: Mapping[str, Any],
    fh: Any,
    tmp: Path,
    shared: ArtifactStore | None,
) -> str | None:
    """Copy the bytes of ``sha`` to ``tmp`` (open as ``fh``); None, or why it could not."""
    if art.get("shared") is True:
        if shared is None:
            return (
                "its bytes are in an artifact store and CRYSTALLIZE_DIST_ARTIFACT_STORE "
                "is not set here"
            )
        fh.close()
        try:
            found = shared.get(sha, tmp)
        except OSError as exc:
            return f"the artifact store {shared.url} cannot be read ({exc})"
        return None if found else f"its bytes are not in the artifact store {shared.url}"
    data = store.get_blob(blob_key(sha))
    if data is None:
        return "its bytes are not in the store"
    fh.write(data)
    return None


def fetch(
    store: RunStore,
    records: Iterable[dict[str, Any]],
    root: str | Path,
    notes: list[str] | None = None,
    shared: ArtifactStore | None = None,
) -> Iterator[dict[str, Any]]:
    """``records``, with every shipped artifact written under the reader's ``root`` (unless
    it is there already) and its path pointing there, its bytes read from the run store or
    the ``shared`` artifact store; what could not be written is said in ``notes``."""
    base = Path(root).resolve()
    said = notes if notes is not None else []
    for rec in records:
        for art in rec.get("artifacts") or ():
            if art.get("sha256") is not None:  # shipped by a Celery worker
                _write(store, base, art, said, shared)
        yield rec


def artifact_root(experiment: Any) -> str:
    """Where ``experiment`` keeps artifacts (its ArtifactPlugin's root_dir)."""
    from crystallize_dist.model.artifacts import ArtifactPlugin

    plugin = experiment.get_plugin(ArtifactPlugin) if experiment is not None else None
    return str(plugin.root_dir) if plugin is not None else ArtifactPlugin().root_dir


def artifact_info(experiment: Any) -> dict[str, Any] | None:
    """Where the run's ArtifactPlugin writes (see ``ArtifactPlugin.run_info``), or None."""
    from crystallize_dist.model.artifacts import ArtifactPlugin

    plugin = experiment.get_plugin(ArtifactPlugin)
    return plugin.run_info(experiment) if plugin is not None else None


def choose_version(experiment: Any) -> None:
    """Before a run is submitted: its ArtifactPlugin picks the version folder the run writes
    into (the next one when ``versioned``), as ``before_run`` does in-process - its workers
    never run ``before_run``."""
    from crystallize_dist.model.artifacts import ArtifactPlugin

    plugin = experiment.get_plugin(ArtifactPlugin)
    if plugin is not None:
        experiment.assign_id()
        plugin.claim_version(experiment)


def for_run(experiment: Any, info: Mapping[str, Any] | None) -> None:
    """A worker's copy of an experiment for one run writes where the run's manifest says
    (its own copy of the ArtifactPlugin: runs never share one)."""
    from crystallize_dist.model.artifacts import ArtifactPlugin

    if not info:
        return
    experiment.plugins = [
        ArtifactPlugin.from_run_info(info, p) if isinstance(p, ArtifactPlugin) else p
        for p in experiment.plugins
    ]


_PLAIN_NAME = re.compile(r"\A[\w.-]{1,200}\Z")


def _plain_name(name: Any) -> bool:
    """A name that is one path component, no more (``..`` and ``.`` are not names)."""
    return isinstance(name, str) and bool(_PLAIN_NAME.match(name)) and name not in (".", "..")


def write_run_files(
    manifest: Mapping[str, Any], result: Any, root: str | Path, experiment: Any = None
) -> str | None:
    """A finished run's metadata, results and markers under the reader's artifact root, as
    the ArtifactPlugin writes them after an in-process run (so ``strategy="resume"``,
    ``load_metrics`` and Artifact datasources work on it too); ``submit --wait`` and ``wait``
    write them. The root is ``experiment``'s ArtifactPlugin's (the submitter's own), else
    ``root``; only the run's folder name, version and condition names come from the
    manifest, and they must be plain names (and a number): otherwise nothing is written,
    and the returned note says why."""
    from crystallize_dist.model.artifacts import ArtifactPlugin

    info = manifest["experiment"].get("artifacts")
    if not info or result.missing:
        return None
    folder, version = info.get("folder"), info.get("version", 0)
    names = [folder, *result.metrics.treatments]
    if not all(_plain_name(n) for n in names) or type(version) is not int or version < 0:
        return (
            f"the run's files (metadata.json, results.json) are not written: its folder "
            f"{folder!a}, version {version!a} or a treatment's name is not a plain "
            "name"
        )
    base = experiment.get_plugin(ArtifactPlugin) if experiment is not None else None
    plugin = ArtifactPlugin.from_run_info(info, base or ArtifactPlugin(root_dir=str(root)))
    replicates = int(manifest["plan"]["replicates"])
    plugin.write_results(replicates, info.get("id"), info.get("name"), result)
    return None
