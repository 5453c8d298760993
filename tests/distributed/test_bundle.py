"""Code bundles: deterministic packing, ignore list, size limit, signatures, safe unpacking,
and the worker side (local code, bundle fallback, refusal of unsigned or tampered bundles)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import stat
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from experiment_sources import MARKER_ENV, hide, write_bundled

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.bundle import (
    BUNDLES_DIRNAME,
    attach_bundle,
    bundle_source,
    ensure_code,
)
from crystallize_dist.distributed.coordinator import create_run, plan_run
from crystallize_dist.distributed.messages import cell_message
from crystallize_dist.distributed.packing import collect, pack, sign, signature_ok, unpack
from crystallize_dist.distributed.results import load_result
from crystallize_dist.distributed.runner import CellRunner
from crystallize_dist.distributed.signing import sign_manifest
from crystallize_dist.distributed.store import RunStore, SQLiteStore
from crystallize_dist.distributed.store.redis_store import RedisStore
from crystallize_dist.engine.plan import RunPlan
from crystallize_dist.errors import BundleError
from crystallize_dist.model.references import ExperimentRef, load_experiment, load_ref

SECRET = "s3cret-for-tests"


@pytest.fixture(params=["fakeredis", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunStore]:
    if request.param == "sqlite":
        s: RunStore = SQLiteStore(tmp_path / "store" / "runs.sqlite3")
    else:
        import fakeredis

        s = RedisStore("redis://fake/0", client=fakeredis.FakeRedis())
    yield s
    s.close()


def overwrite_blob(store: RunStore, sha: str, data: bytes) -> None:
    """Replace a stored bundle's bytes behind the store's back (put_blob never overwrites)."""
    if isinstance(store, RedisStore):
        store.r.set(C.key_bundle(sha), data)
        return
    assert isinstance(store, SQLiteStore)
    with sqlite3.connect(store.path) as db:
        db.execute(f"UPDATE {C.TABLE_BLOBS} SET data = ? WHERE key = ?", (data, sha))


def submit(store: RunStore, ref_text: str, settings: Settings, **kw: Any) -> dict[str, Any]:
    """Plan a run and write its manifest with a bundle, as ``submit`` does (no broker)."""
    exp, ref = load_experiment(ref_text)
    spec = plan_run(exp, seed=5)
    options = attach_bundle({"drift_policy": "warn"}, ref, store, settings, **kw)
    return create_run(store, exp, ref, ref_text, spec, options, secret=settings.secret)


@pytest.fixture(autouse=True)
def isolated_imports(tmp_path: Path) -> Iterator[None]:
    """Modules imported from this test's folders are forgotten afterwards (each test is a
    fresh submitter and worker); sys.path is restored."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name, module in list(sys.modules.items()):
        if str(tmp_path) in str(getattr(module, "__file__", None) or ""):
            del sys.modules[name]


def forget_modules(tag: str) -> None:
    """Act like a fresh worker process: the experiment's modules are not imported yet."""
    for name in list(sys.modules):
        if name.endswith(f"_{tag}") or name.split(".")[0] == "cdt_pkg_mod":
            del sys.modules[name]


def run_all(store: RunStore, manifest: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    runner = CellRunner(store, settings, node="w1@host-test")
    plan = RunPlan.from_dict(manifest["plan"])
    runner.run(manifest["run_id"], [cell_message(c) for c in plan.cells()])
    return list(store.iter_records(manifest["run_id"]))


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


# -- packing -----------------------------------------------------------------------------------
def test_same_files_give_the_same_bytes_wherever_and_whenever_they_are(tmp_path: Path) -> None:
    files = {"b.py": b"print(2)\n", "a.py": b"print(1)\n", "pkg/c.py": b"x = 3\n"}
    one = pack(tree(tmp_path / "one", files))
    os.utime(tmp_path / "one" / "a.py", (1_000_000, 1_000_000))
    again = pack(tmp_path / "one")
    elsewhere = pack(tree(tmp_path / "two", dict(reversed(files.items()))))
    assert one.data == again.data == elsewhere.data
    assert one.sha256 == hashlib.sha256(one.data).hexdigest()
    with zipfile.ZipFile(io.BytesIO(one.data)) as zf:
        assert zf.namelist() == ["a.py", "b.py", "pkg/c.py"]
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    (tmp_path / "two" / "a.py").write_bytes(b"print(10)\n")
    assert pack(tmp_path / "two").sha256 != one.sha256


def test_ignore_list_and_crystallizeignore(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "exp.py": b"",
            "sub/keep.py": b"",
            ".git/config": b"",
            "__pycache__/exp.cpython-311.pyc": b"",
            "sub/old.pyc": b"",
            ".crystallize-dist/runs.sqlite3": b"",
            "data/big.csv": b"",
            "sub/data/x.csv": b"",
            ".cache/x": b"",
            ".venv/lib/site.py": b"",
            "notes.tmp": b"",
            "secret/key.pem": b"",
            "sub/secret/keep.txt": b"",
            ".crystallizeignore": b"# comment\n*.tmp\n\n/secret/\n",
            ".env": b"PASSWORD=x",
            ".ssh/id_rsa": b"key",
            "sub/server.key": b"key",
        },
    )
    names = [rel for rel, _, _ in collect(root)]
    assert names == ["exp.py", "sub/keep.py", "sub/secret/keep.txt"]


def test_links_out_of_the_folder_and_the_home_folder_are_never_shipped(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    root = tree(tmp_path / "exp", {"exp.py": b"", "inside.txt": b"ok"})
    (root / "leak.txt").symlink_to(outside)
    (root / "alias.txt").symlink_to(root / "inside.txt")
    assert [rel for rel, _, _ in collect(root)] == ["alias.txt", "exp.py", "inside.txt"]
    with pytest.raises(BundleError, match="home"):
        pack(Path.home())
    for shared in ("/tmp", tempfile.gettempdir(), "/"):  # a script kept right in /tmp
        with pytest.raises(BundleError, match="temporary folder"):
            pack(Path(shared))


def test_too_big_names_the_size_the_limit_and_the_biggest_files(tmp_path: Path) -> None:
    root = tree(tmp_path, {"huge.bin": b"x" * 6000, "mid.bin": b"x" * 3000, "exp.py": b"x = 1\n"})
    with pytest.raises(BundleError) as err:
        pack(root, limit=4000)
    message = str(err.value)
    assert "8.8 KB" in message and "3.9 KB limit" in message
    assert message.index("huge.bin (5.9 KB)") < message.index("mid.bin (2.9 KB)")
    assert "\n" not in message and ".crystallizeignore" in message
    assert C.DEFAULT_BUNDLE_LIMIT == 20 * 1024 * 1024


def test_hmac_sign_and_verify() -> None:
    data = b"zip bytes"
    signature = sign(data, SECRET)
    assert len(signature) == 64 and signature_ok(data, SECRET, signature)
    assert not signature_ok(data, "another secret", signature)
    assert not signature_ok(b"zip bytez", SECRET, signature)


# -- unpacking -------------------------------------------------------------------------------
def _zip(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def _link(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    "entry",
    ["../evil.py", "ok/../../evil.py", "/tmp/evil.py", "C:/evil.py", "a\\..\\..\\evil.py"],
)
def test_zip_slip_is_rejected(entry: str, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "bundles" / ("a" * 64)
    data = _zip([("fine.py", b"x = 1\n"), (entry, b"import os\n")])
    with pytest.raises(BundleError, match="outside its folder"):
        unpack(data, dest)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # the temporary folder is gone too
    assert not (tmp_path / "evil.py").exists() and not (tmp_path / "cache" / "evil.py").exists()


def test_links_and_bombs_are_rejected(tmp_path: Path) -> None:
    dest = tmp_path / "bundles" / ("b" * 64)
    with pytest.raises(BundleError, match="link"):
        unpack(_zip([(_link("l.py"), b"/etc/passwd")]), dest)
    with pytest.raises(BundleError, match="over the"):
        unpack(_zip([("big.bin", b"\0" * 5000)]), dest, limit=1000)
    with pytest.raises(BundleError, match="not a zip"):
        unpack(b"not a zip at all", dest)
    assert not dest.exists()


def test_unpack_reuses_an_existing_folder(tmp_path: Path) -> None:
    packed = pack(tree(tmp_path / "src", {"exp.py": b"x = 1\n"}))
    dest = tmp_path / "bundles" / packed.sha256
    assert unpack(packed.data, dest) == dest
    (dest / "sentinel").write_text("still here")
    assert unpack(packed.data, dest) == dest
    assert (dest / "sentinel").exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == [packed.sha256]


# -- submit side -----------------------------------------------------------------------------
def test_attach_bundle_stores_the_zip_and_describes_it(store: RunStore, tmp_path: Path) -> None:
    exp_file = write_bundled(tmp_path / "src", "attach")
    ref = ExperimentRef("file", str(exp_file))
    options = attach_bundle({}, ref, store, Settings(secret=SECRET))
    info = options["bundle"]
    assert info["root"] == str(tmp_path / "src") and info["relpath"] == "exp_attach.py"
    blob = store.get_blob(info["sha256"])
    assert blob is not None and len(blob) == info["size"]
    assert hashlib.sha256(blob).hexdigest() == info["sha256"]
    assert info["signature"] == sign(blob, SECRET)
    assert "signature" not in attach_bundle({}, ref, store, Settings())["bundle"]
    assert attach_bundle({}, ref, store, Settings(), local=True) == {}
    folder = ExperimentRef("folder", str(tmp_path / "src"))
    assert bundle_source(folder) == (tmp_path / "src", None, ".")
    assert bundle_source(ExperimentRef("module", "json.decoder")) is None
    assert bundle_source(ExperimentRef("module", "crystallize_dist.engine.cell")) is None


# -- worker side -----------------------------------------------------------------------------
def test_worker_with_the_same_code_uses_it_in_place(store: RunStore, tmp_path: Path) -> None:
    exp_file = write_bundled(tmp_path / "src", "inplace")
    settings = Settings(home=tmp_path / "home")
    manifest = submit(store, str(exp_file), settings)
    ref = ExperimentRef.from_dict(manifest["experiment"]["ref"])
    assert ensure_code(ref, manifest, store, settings) == ref
    assert not (tmp_path / "home" / BUNDLES_DIRNAME).exists()


def test_worker_without_the_code_runs_the_bundle_with_the_same_digest(
    store: RunStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp_file = write_bundled(tmp_path / "src", "moved")
    settings = Settings(home=tmp_path / "home")
    here = submit(store, str(exp_file), settings)
    there = submit(store, str(exp_file), settings)
    assert run_all(store, here, settings)[0]["status"] == "ok"
    hide(tmp_path / "src")
    forget_modules("moved")
    records = run_all(store, there, settings)
    assert {r["status"] for r in records} == {"ok"}, records[0].get("error")
    expected = load_result(store, here["run_id"], verify=False).digest
    assert load_result(store, there["run_id"], verify=False).digest == expected
    sha = there["options"]["bundle"]["sha256"]
    assert (tmp_path / "home" / BUNDLES_DIRNAME / sha / "helpers_moved.py").exists()


def test_changed_local_code_loses_to_the_submitted_bundle(
    store: RunStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp_file = write_bundled(tmp_path / "src", "changed")
    settings = Settings(home=tmp_path / "home")
    manifest = submit(store, str(exp_file), settings)
    (tmp_path / "src" / "helpers_changed.py").write_text(
        (tmp_path / "src" / "helpers_changed.py").read_text().replace("+ float(", "- float(")
    )
    forget_modules("changed")
    ref = ensure_code(
        ExperimentRef.from_dict(manifest["experiment"]["ref"]), manifest, store, settings
    )
    assert Path(ref.target).parent.name == manifest["options"]["bundle"]["sha256"]
    assert load_ref(ref).fingerprint() == manifest["experiment"]["fingerprint"]


def _worker_case(
    store: RunStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tag: str, submit_secret: str
) -> tuple[dict[str, Any], Path]:
    exp_file = write_bundled(tmp_path / "src", tag)
    manifest = submit(store, str(exp_file), Settings(secret=submit_secret or None))
    hide(tmp_path / "src")
    forget_modules(tag)
    marker = tmp_path / "imported.marker"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    return manifest, marker


def _assert_refused(
    records: list[dict[str, Any]],
    manifest: dict[str, Any],
    marker: Path,
    home: Path,
    word: str,
    error: str = "BundleError",
) -> None:
    assert len(records) == manifest["n_cells"]
    assert {r["error"]["type"] for r in records} == {error}
    assert all(word in r["error"]["message"] for r in records), records[0]["error"]
    assert not marker.exists()  # nothing from the bundle was imported
    assert not (home / BUNDLES_DIRNAME / manifest["options"]["bundle"]["sha256"]).exists()
    assert not [
        m for m in list(sys.modules.values()) if str(home) in str(getattr(m, "__file__", ""))
    ]


def test_one_flipped_byte_is_refused_and_nothing_is_imported(
    store: RunStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, marker = _worker_case(store, tmp_path, monkeypatch, "flipped", SECRET)
    sha = manifest["options"]["bundle"]["sha256"]
    blob = bytearray(store.get_blob(sha) or b"")
    blob[len(blob) // 2] ^= 0x01
    overwrite_blob(store, sha, bytes(blob))
    home = tmp_path / "home"
    records = run_all(store, manifest, Settings(home=home, secret=SECRET))
    _assert_refused(records, manifest, marker, home, "tampered")


def test_unsigned_or_wrongly_signed_runs_are_refused_by_a_worker_with_a_secret(
    store: RunStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole run is signed: a run submitted without the secret, or with another one, is
    refused before its bundle is even fetched."""
    unsigned, marker = _worker_case(store, tmp_path, monkeypatch, "unsigned", "")
    home = tmp_path / "home"
    records = run_all(store, unsigned, Settings(home=home, secret=SECRET))
    _assert_refused(records, unsigned, marker, home, "unsigned", "SignatureError")
    other = tmp_path / "other"
    other.mkdir()
    wrong, marker = _worker_case(store, other, monkeypatch, "wrongkey", "another secret")
    records = run_all(store, wrong, Settings(home=home, secret=SECRET))
    _assert_refused(records, wrong, marker, home, "does not match", "SignatureError")


def test_a_bundle_signed_with_another_key_is_refused(
    store: RunStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest re-signed with the right key around a bundle signed with another: the
    bundle's own signature still decides."""
    manifest, marker = _worker_case(store, tmp_path, monkeypatch, "bundlekey", SECRET)
    bundle = manifest["options"]["bundle"]
    bundle["signature"] = sign(store.get_blob(bundle["sha256"]) or b"", "another secret")
    resigned = sign_manifest(manifest, SECRET)
    overwrite_manifest(store, resigned)
    home = tmp_path / "home"
    records = run_all(store, resigned, Settings(home=home, secret=SECRET))
    _assert_refused(records, manifest, marker, home, "signed with another")


def overwrite_manifest(store: RunStore, manifest: dict[str, Any]) -> None:
    """Replace a run's manifest behind the store's back (create_run never overwrites)."""
    if isinstance(store, RedisStore):
        store.r.set(C.key_manifest(manifest["run_id"]), json.dumps(manifest))
        return
    assert isinstance(store, SQLiteStore)
    with sqlite3.connect(store.path) as db:
        db.execute(
            f"UPDATE {C.TABLE_RUNS} SET manifest = ? WHERE run_id = ?",
            (json.dumps(manifest), manifest["run_id"]),
        )


def test_a_signed_bundle_runs_and_is_unpacked_once_into_a_private_folder(
    store: RunStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, marker = _worker_case(store, tmp_path, monkeypatch, "signed", SECRET)
    settings = Settings(home=tmp_path / "home", secret=SECRET)
    records = run_all(store, manifest, settings)
    assert {r["status"] for r in records} == {"ok"}
    assert marker.exists()  # the marker works: a verified bundle is imported
    folder = tmp_path / "home" / BUNDLES_DIRNAME / manifest["options"]["bundle"]["sha256"]
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    before = (folder / "exp_signed.py").stat().st_ino
    ref = ExperimentRef.from_dict(manifest["experiment"]["ref"])
    assert Path(ensure_code(ref, manifest, store, settings).target).parent == folder
    assert (folder / "exp_signed.py").stat().st_ino == before  # reused, not extracted again


@pytest.mark.parametrize("change", ["added", "edited", "removed"])
def test_a_changed_bundle_folder_is_refused_before_import_with_a_secret(
    change: str, store: RunStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unpacked bundle folder is checked against the verified zip before its code is
    imported again: a file planted, edited or removed there is refused."""
    tag = f"cache{change}"
    manifest, _ = _worker_case(store, tmp_path, monkeypatch, tag, SECRET)
    home = tmp_path / "home"
    settings = Settings(home=home, secret=SECRET)
    assert {r["status"] for r in run_all(store, manifest, settings)} == {"ok"}
    folder = home / BUNDLES_DIRNAME / manifest["options"]["bundle"]["sha256"]
    helpers = folder / f"helpers_{tag}.py"
    if change == "added":
        (folder / "numpy_extra.py").write_text("import os\n")
    elif change == "edited":
        helpers.write_text(helpers.read_text() + "\nPLANTED = 1\n")
    else:
        helpers.unlink()
    ref = ExperimentRef.from_dict(manifest["experiment"]["ref"])
    with pytest.raises(BundleError, match="differs from bundle"):
        ensure_code(ref, manifest, store, settings)
    (folder / "__pycache__").mkdir(exist_ok=True)  # Python's own cache is not a change
    if change == "added":
        (folder / "numpy_extra.py").unlink()
        assert Path(ensure_code(ref, manifest, store, settings).target).parent == folder


def test_missing_blob_and_bad_address_are_bundle_errors(store: RunStore, tmp_path: Path) -> None:
    ref = ExperimentRef("file", str(tmp_path / "gone" / "exp.py"))
    settings = Settings(home=tmp_path / "home")
    bundle = {"sha256": "c" * 64, "root": str(tmp_path / "gone"), "relpath": "exp.py"}
    manifest = {"run_id": "r1", "options": {"bundle": bundle}}
    with pytest.raises(BundleError, match="missing from the store"):
        ensure_code(ref, manifest, store, settings)
    manifest["options"]["bundle"] = {**bundle, "sha256": "../../etc"}
    with pytest.raises(BundleError, match="not a sha256"):
        ensure_code(ref, manifest, store, settings)


def test_a_module_reference_ships_its_top_level_package(
    store: RunStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "proj" / "cdt_pkg_mod"
    write_bundled(pkg / "sub", "mod")
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "exp_mod.py").write_text(
        (pkg / "sub" / "exp_mod.py").read_text().replace("from helpers_mod", "from .helpers_mod")
    )
    (tmp_path / "proj" / "unrelated.txt").write_text("not shipped")
    monkeypatch.syspath_prepend(str(tmp_path / "proj"))
    settings = Settings(home=tmp_path / "home")
    manifest = submit(store, "cdt_pkg_mod.sub.exp_mod:experiment", settings)
    info = manifest["options"]["bundle"]
    assert (
        info["root"] == str(tmp_path / "proj") and info["relpath"] == "cdt_pkg_mod/sub/exp_mod.py"
    )
    with zipfile.ZipFile(io.BytesIO(store.get_blob(info["sha256"]) or b"")) as zf:
        assert all(n.startswith("cdt_pkg_mod/") for n in zf.namelist())
    hide(tmp_path / "proj")
    forget_modules("mod")
    records = run_all(store, manifest, settings)
    assert {r["status"] for r in records} == {"ok"}, records[0].get("error")
    assert str(tmp_path / "home") in sys.modules["cdt_pkg_mod"].__file__  # type: ignore[operator]


def test_one_worker_process_runs_two_code_versions_each_with_its_own_neighbours(
    store: RunStore, tmp_path: Path
) -> None:
    exp_file = write_bundled(tmp_path / "src", "versions")
    settings = Settings(home=tmp_path / "home")
    first = submit(store, str(exp_file), settings)
    helpers = tmp_path / "src" / "helpers_versions.py"
    helpers.write_text(helpers.read_text().replace("+ float(", "- float("))
    second = submit(store, str(exp_file), settings)
    assert first["options"]["bundle"]["sha256"] != second["options"]["bundle"]["sha256"]
    hide(tmp_path / "src")
    forget_modules("versions")
    runner = CellRunner(store, settings, node="w1@host-test")
    for manifest in (first, second):
        plan = RunPlan.from_dict(manifest["plan"])
        runner.run(manifest["run_id"], [cell_message(c) for c in plan.cells()])
        records = list(store.iter_records(manifest["run_id"]))
        assert {r["status"] for r in records} == {"ok"}, records[0].get("error")
    one = load_result(store, first["run_id"], verify=False).metrics
    two = load_result(store, second["run_id"], verify=False).metrics
    assert one.baseline.metrics["x"] != two.baseline.metrics["x"]
