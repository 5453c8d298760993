"""Code bundles: how a worker gets the experiment's code.

At submit (not ``--local``) the experiment's source is packed into a deterministic zip (see
``packing``): the file's folder for a file reference, the config folder for a folder
reference, the top-level package for a module reference outside site-packages. The zip is
stored content-addressed (``store.put_blob(sha256, bytes)``) and described in the manifest::

    options["bundle"] = {"sha256", "size", "files", "tree", "root", "relpath", "signature"?}

``root`` is the submitter's folder the entries are relative to, ``relpath`` the reference's
target inside it, ``tree`` a digest of names and contents, ``signature`` the hex
HMAC-SHA256 of the zip keyed with ``CRYSTALLIZE_DIST_SECRET`` (absent without a secret).

On a worker ``ensure_code`` uses the submitted reference when the same files are here;
otherwise it fetches the zip, checks its sha256 and - when the worker has a secret - its
signature (an unsigned or tampered bundle is refused before anything in it is imported),
unpacks it once into ``<home>/bundles/<sha256>/`` (a folder only its owner can open,
0700) and points the reference there. With a secret, a folder unpacked before is checked
against the verified zip before its code is imported, and a run without a bundle is
refused unless it names an installed module (``require_bundle``, Celery workers).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.packing import (
    folder_tree,
    local_tree,
    pack,
    safe_name,
    sign,
    signature_ok,
    unpack,
    zip_tree,
)
from crystallize_dist.distributed.sources import bundle_source, installed_module, module_source
from crystallize_dist.distributed.store.base import RunStore
from crystallize_dist.errors import BundleError, ExperimentLoadError
from crystallize_dist.model.importing import activate_folder, importable_names
from crystallize_dist.model.references import ExperimentRef

_log = logging.getLogger("crystallize_dist.bundle")
_SHA = re.compile(r"^[0-9a-f]{64}$")
BUNDLES_DIRNAME = "bundles"


def attach_bundle(
    options: dict[str, Any],
    ref: ExperimentRef,
    store: RunStore,
    settings: Settings,
    *,
    local: bool = False,
    limit: int = C.DEFAULT_BUNDLE_LIMIT,
) -> dict[str, Any]:
    """The run options plus ``bundle`` (see module doc); the zip is put in ``store``.

    ``--local`` runs and installed modules get no bundle. Too big a source folder is a
    BundleError naming the size, the limit and the biggest files."""
    if local:
        return options
    source = bundle_source(ref)
    if source is None:
        return options
    root, only, relpath = source
    packed = pack(root, only, limit)
    store.put_blob(packed.sha256, packed.data)
    info: dict[str, Any] = {
        "sha256": packed.sha256,
        "size": len(packed.data),
        "files": packed.files,
        "tree": packed.tree,
        "root": str(root),
        "relpath": relpath,
    }
    if only:
        info["only"] = only
    if settings.secret:
        info["signature"] = sign(packed.data, settings.secret)
    return {**options, "bundle": info}


def _local_ref_matches(ref: ExperimentRef, bundle: Mapping[str, Any]) -> bool:
    """Whether this machine has the submitted files: same folder, same tree digest (file and
    folder references), or the module's package here hashes the same."""
    if ref.kind == "module":
        source = module_source(ref.target)
        if source is None:
            return False
        root, only, _ = source
    else:
        if not Path(ref.target).exists():
            return False
        root, only = Path(str(bundle.get("root", ""))), None
    try:
        return root.is_dir() and local_tree(root, only) == bundle.get("tree")
    except (OSError, BundleError):
        return False


def bundle_cache(settings: Settings) -> Path:
    """``<home>/bundles``, made when missing and kept to its owner (0700)."""
    folder = (settings.home / BUNDLES_DIRNAME).resolve()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = folder.stat()
    if info.st_mode & 0o077 and info.st_uid == os.getuid():
        folder.chmod(0o700)
    return folder


def _fetch(bundle: Mapping[str, Any], store: RunStore, settings: Settings, run_id: str) -> Path:
    """The unpacked bundle folder, after checking the blob's sha256 and signature (and,
    with a secret, that a folder unpacked before still holds exactly the zip's files)."""
    sha = str(bundle.get("sha256", ""))
    if not _SHA.match(sha):
        raise BundleError(f"run '{run_id}': bundle address {sha[:80]!a} is not a sha256")
    dest = bundle_cache(settings) / sha
    if dest.is_dir() and not settings.secret:
        return dest
    data = store.get_blob(sha)
    if data is None:
        raise BundleError(
            f"run '{run_id}': bundle {sha[:12]} is missing from the store (expired or "
            "deleted); resubmit the run"
        )
    if hashlib.sha256(data).hexdigest() != sha:
        raise BundleError(
            f"run '{run_id}': bundle {sha[:12]} is tampered with (its bytes do not hash to "
            "its address); refusing to import it"
        )
    if not settings.secret:
        return unpack(data, dest)
    signature = bundle.get("signature")
    if signature is None:
        raise BundleError(
            f"run '{run_id}': bundle {sha[:12]} is unsigned and this worker requires a "
            "signature (CRYSTALLIZE_DIST_SECRET is set); submit with the same secret"
        )
    if not signature_ok(data, settings.secret, signature):
        raise BundleError(
            f"run '{run_id}': bundle {sha[:12]} is tampered with or signed with another "
            "secret (its signature does not match); refusing to import it"
        )
    folder = unpack(data, dest)
    if folder_tree(folder) != zip_tree(data):
        raise BundleError(
            f"run '{run_id}': the unpacked bundle {folder} differs from bundle {sha[:12]} (a "
            "file was added, changed or removed after it was unpacked); refusing to import "
            "it - delete that folder and the worker unpacks the bundle again"
        )
    return folder


def _activate(folder: Path, tops: set[str], stale: tuple[Path, ...]) -> None:
    """Make ``folder`` win imports in this long-lived worker process: first on sys.path, and
    modules of the same top-level names loaded from ``stale`` places (other bundles, the
    submitter's folder) forgotten, so a new code version never runs with old neighbours."""
    activate_folder(
        folder, tops, lambda path: path is None or any(path.is_relative_to(s) for s in stale)
    )


def ensure_code(
    ref: ExperimentRef,
    manifest: Mapping[str, Any],
    store: RunStore,
    settings: Settings,
    *,
    require_bundle: bool = False,
) -> ExperimentRef:
    """A reference this worker can load: the submitted one when the same code is here, else
    one into the unpacked bundle (see module doc). The caller still compares fingerprints.

    ``require_bundle`` (a Celery worker with a secret): a run without a bundle may name only
    an installed module, never a file or folder that might have been planted here."""
    bundle = manifest.get("options", {}).get("bundle")
    run_id = str(manifest.get("run_id", "?"))
    installed = ref.kind == "module" and installed_module(ref.target)
    if not isinstance(bundle, Mapping) and require_bundle and settings.secret and not installed:
        raise BundleError(
            f"run '{run_id}' has no code bundle and names {str(ref)!a}, which is not "
            "an installed module here; a worker with CRYSTALLIZE_DIST_SECRET imports only "
            "code it can verify (a signed bundle, or an installed module)"
        )
    if not isinstance(bundle, Mapping):
        if ref.kind in ("file", "folder") and not Path(ref.target).exists():
            raise ExperimentLoadError(
                f"{ref.target} does not exist on this worker and the run has no code bundle; "
                "run the worker where the code is, or install it and submit package.module:attr"
            )
        return ref
    bundles = (settings.home / BUNDLES_DIRNAME).resolve()
    if _local_ref_matches(ref, bundle):
        if ref.kind != "module":  # code left by other runs' bundles must not shadow it
            here = Path(ref.target).resolve()
            here = here.parent if here.is_file() else here
            _activate(here, importable_names(here), (bundles,))
        return ref
    folder = _fetch(bundle, store, settings, run_id)
    relpath = safe_name(str(bundle.get("relpath") or "."))
    _log.info("run %s: using code bundle %s", run_id, folder)
    stale = (bundles, Path(str(bundle.get("root") or folder)).resolve())
    if ref.kind == "module":  # the submitted package wins wherever else it is installed
        _activate(folder, {ref.target.split(".")[0]}, (Path("/"),))
        return ref
    target = folder / relpath if str(relpath) != "." else folder
    if not target.exists():
        raise BundleError(f"run '{run_id}': bundle {folder.name[:12]} has no {relpath}")
    _activate(target.parent if target.is_file() else target, importable_names(folder), stale)
    return ExperimentRef(ref.kind, str(target), ref.attr)
