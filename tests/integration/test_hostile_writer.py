"""A hostile writer with access to Redis, against a real redis-server, a real
``crystallize-dist worker`` with the secret and the CLI as a subprocess.

Every kind of key the run store writes (constants.py: the manifest, the run state, records,
code bundles, artifact blobs, worker stamps, the runs index) is altered and forged, and each
case checks what docs/security.md says: no planted code runs on the worker or on a reader
(the markers folder stays empty), no file appears outside the reader's artifact root, a
changed number is reported, and the case ends in one clear line.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hostile import (
    MARKERS_ENV,
    SECRET,
    Store,
    forged_manifest,
    planted,
    send,
    write_experiment,
    zipped,
)
from redis_server import RedisServer
from workers import Worker, run_cli

from crystallize_dist import constants as C
from crystallize_dist.distributed.artifacts import blob_key
from crystallize_dist.distributed.signing import sign_manifest
from crystallize_dist.distributed.store import RunStore, open_store
from crystallize_dist.distributed.waiting import wait_for

QUEUE = "q-hostile"
PARKED = "q-parked"  # no worker reads it: a run waits there while the attacker works


@dataclass
class Lab:
    """The server, the worker with the secret, the markers folder and a reader's folder."""

    url: str
    root: Path
    markers: Path
    worker: Worker
    raw: Store
    store: RunStore

    def cli(
        self, *args: str, secret: bool = True, cwd: Path | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        full = {
            "CRYSTALLIZE_DIST_HOME": str(self.root / "reader-home"),
            MARKERS_ENV: str(self.markers),
        }
        if secret:
            full["CRYSTALLIZE_DIST_SECRET"] = SECRET
        full.update(env)
        reader = cwd or self.root / "reader"
        reader.mkdir(exist_ok=True)
        return run_cli(*args, broker_url=self.url, cwd=reader, env=full)

    def submit(self, name: str, *, queue: str = PARKED, wait: bool = False) -> tuple[str, Path]:
        """Submit the suite's experiment (from a folder of its own) with the secret."""
        exp = write_experiment(self.root / "src" / name)
        args = ["submit", str(exp), "--no-progress", *(["--wait"] if wait else [])]
        out = self.cli(*args, CRYSTALLIZE_DIST_QUEUE=queue)
        assert out.returncode == 0, out.stderr
        return out.stdout.split()[0], exp.parent

    def release(self, run_id: str, manifest: dict[str, Any] | None = None) -> None:
        """Send the cells of ``run_id`` (as its manifest, perhaps forged, says) to the
        worker, and wait until each has a record."""
        manifest = manifest or self.raw.manifest(run_id)
        plan, seeds = manifest["plan"], manifest["seeds"]
        cells = [
            (cond, rep, seeds[rep])
            for cond in ["baseline", *plan["treatments"]]
            for rep in range(int(plan["replicates"]))
        ]
        send(self.url, QUEUE, run_id, cells)
        wait_for(self.store, run_id, timeout=90)

    def errors(self, run_id: str) -> set[tuple[str, str]]:
        """(error type, message) of every record of ``run_id`` (read without checks)."""
        recs = list(self.store.iter_records(run_id))
        assert recs and all(r["status"] == "error" for r in recs), recs
        return {(r["error"]["type"], r["error"]["message"]) for r in recs}

    def nothing_planted_ran(self) -> None:
        assert sorted(p.name for p in self.markers.iterdir()) == []


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("hostile")
    server = RedisServer(root / "redis").start()
    markers = root / "markers"
    markers.mkdir()
    (root / "worker-cwd").mkdir()
    env = {
        "CRYSTALLIZE_DIST_SECRET": SECRET,
        "CRYSTALLIZE_DIST_QUEUE": QUEUE,
        "CRYSTALLIZE_DIST_HOME": str(root / "worker-home"),
        MARKERS_ENV: str(markers),
    }
    worker = Worker(
        server.url, root, name="hostile", concurrency=1, cwd=root / "worker-cwd", env=env
    )
    store = open_store(server.url)
    raw = Store(server.url)
    try:
        worker.wait_ready()
        yield Lab(server.url, root, markers, worker, raw, store)
    finally:
        worker.stop()
        raw.close()
        store.close()
        server.stop()


@pytest.fixture(scope="module")
def finished(lab: Lab) -> str:
    """A run submitted with the secret and finished by the worker."""
    return lab.submit("finished", queue=QUEUE, wait=True)[0]


def one_line(out: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The one ``error:`` line of a failed command, naming every needle."""
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert "Traceback" not in out.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --- the manifest ---------------------------------------------------------------------------
def test_a_forged_unsigned_run_naming_a_planted_file_runs_nothing(lab: Lab) -> None:
    evil = planted(lab.root / "plant", "evil_file")
    run_id = "20990101-000001-f00001"
    lab.raw.forge_run(run_id, forged_manifest(run_id, str(evil)))
    lab.release(run_id)
    ((kind, message),) = lab.errors(run_id)
    assert kind == "SignatureError" and "its manifest is unsigned" in message
    lab.nothing_planted_ran()
    one_line(lab.cli("result", run_id), "its manifest is unsigned", "refusing to use it")


@pytest.mark.parametrize(
    "change", ["entry-point", "attribute", "seed-table", "bundle", "options", "run-id-inside"]
)
def test_an_altered_signed_manifest_runs_nothing(lab: Lab, change: str) -> None:
    run_id, folder = lab.submit(f"altered-{change}")
    shutil.rmtree(folder)  # the worker has only the bundle to go by
    manifest = lab.raw.manifest(run_id)
    bundle = manifest["options"]["bundle"]
    if change == "entry-point":
        bundle["relpath"] = "decoy.py"  # another file of the same signed bundle
    elif change == "attribute":
        manifest["experiment"]["ref"]["attr"] = "sidecar"
    elif change == "seed-table":
        manifest["seeds"][0] += 1
    elif change == "bundle":
        data, sha = zipped({"exp.py": evil_source(lab)})
        lab.raw.put_blob(sha, data)
        bundle["sha256"] = sha
    elif change == "options":
        manifest["options"]["max_attempts"] = 1000
    else:
        manifest["run_id"] = "20990101-000000-000000"
    lab.raw.put_manifest(run_id, manifest)
    lab.release(run_id, manifest)
    ((kind, message),) = lab.errors(run_id)
    assert kind == "SignatureError" and "does not match its signature" in message, message
    lab.nothing_planted_ran()
    one_line(lab.cli("result", run_id), "does not match its signature")


def test_a_signed_manifest_copied_into_another_run_runs_nothing(lab: Lab, finished: str) -> None:
    copy = "20990101-000002-c0c0c0"
    lab.raw.forge_run(copy, lab.raw.manifest(finished))
    lab.release(copy)
    ((kind, message),) = lab.errors(copy)
    assert kind == "SignatureError" and f"signed for run '{finished}'" in message
    one_line(lab.cli("result", copy), f"signed for run '{finished}'", "copied from another run")


@pytest.mark.parametrize(("n", "signature"), [(1, "é" * 64), (2, "zz"), (3, 12345), (4, "A" * 64)])
def test_a_malformed_manifest_signature_is_one_clear_error(
    lab: Lab, finished: str, n: int, signature: Any
) -> None:
    run_id = f"20990101-000003-00000{n}"
    lab.raw.forge_run(run_id, {**lab.raw.manifest(finished), "signature": signature})
    lab.release(run_id)
    ((kind, message),) = lab.errors(run_id)
    assert kind == "SignatureError" and "malformed signature" in message
    assert "TypeError" not in lab.worker.text()
    one_line(lab.cli("result", run_id), "malformed signature", "not 64 hex digits")


def test_a_signed_run_without_a_bundle_naming_a_file_runs_nothing(lab: Lab) -> None:
    """Even a manifest signed with the secret may name code only through a bundle (or an
    installed module): a file on the worker could have been planted there."""
    evil = planted(lab.root / "plant", "evil_nobundle")
    run_id = "20990101-000004-b0b0b0"
    lab.raw.forge_run(run_id, sign_manifest(forged_manifest(run_id, str(evil)), SECRET))
    lab.release(run_id)
    ((kind, message),) = lab.errors(run_id)
    assert kind == "BundleError" and "has no code bundle" in message, message
    lab.nothing_planted_ran()


@pytest.mark.parametrize(
    ("n", "change", "says"),
    [
        (1, {"plan": "everything"}, "has no plan with integer replicates and master_seed"),
        (2, {"experiment": ["x"]}, "has no experiment"),
        (3, {"seeds": {"0": 1}}, "has a malformed seeds"),
    ],
)
def test_a_manifest_of_the_wrong_shape_is_one_clear_line(
    lab: Lab, n: int, change: dict[str, Any], says: str
) -> None:
    """Readers with or without the secret, and the worker, name the broken manifest in one
    line (no traceback); the worker drops the message and runs nothing."""
    run_id = f"20990101-000011-00000{n}"
    manifest = {**forged_manifest(run_id, str(planted(lab.root / "plant", "evil_shape"))), **change}
    lab.raw.forge_run(run_id, manifest)
    for secret in (True, False):
        for verb in ("status", "result"):
            one_line(lab.cli(verb, run_id, secret=secret), f"manifest of run '{run_id}' {says}")
    listed = lab.cli("list", "--limit", "100").stdout
    row = next(r for r in listed.splitlines() if run_id in r)
    assert "unreadable" in row, listed
    assert f"note: manifest of run '{run_id}' {says}; it cannot be read" in listed
    send(lab.url, QUEUE, run_id, [("baseline", 0, 1)])
    _wait_for_log(lab, f"manifest of run '{run_id}' {says}")
    assert "rejected task" in lab.worker.text()
    assert lab.raw.r.hlen(C.key_records(run_id)) == 0
    lab.nothing_planted_ran()


def _wait_for_log(lab: Lab, text: str) -> None:
    import time

    deadline = time.time() + 60
    while text not in lab.worker.text():
        assert time.time() < deadline, lab.worker.text()[-2000:]
        time.sleep(0.1)


# --- code bundles -------------------------------------------------------------------------------
def test_a_replaced_bundle_runs_nothing(lab: Lab) -> None:
    run_id, folder = lab.submit("replaced-bundle")
    shutil.rmtree(folder)
    sha = lab.raw.manifest(run_id)["options"]["bundle"]["sha256"]
    data, _ = zipped({"exp.py": evil_source(lab)})
    lab.raw.put_blob(sha, data)  # the signed address, the attacker's bytes
    lab.release(run_id)
    ((kind, message),) = lab.errors(run_id)
    assert kind == "BundleError" and "do not hash to its address" in message
    lab.nothing_planted_ran()


# --- the run state ------------------------------------------------------------------------------
def test_a_forged_allow_drift_entry_runs_nothing(lab: Lab) -> None:
    run_id, folder = lab.submit("forged-drift")
    shutil.rmtree(folder)
    data, sha = zipped({"exp.py": evil_source(lab)})
    lab.raw.put_blob(sha, data)
    entry = {"submitted": "x", "resumed_with": "y", "bundle": {"sha256": sha, "relpath": "exp.py"}}
    lab.raw.r.hset(C.key_state(run_id), "allow_drift", json.dumps(entry))
    lab.release(run_id)
    ((kind, message),) = lab.errors(run_id)
    assert kind == "SignatureError" and "state entry 'allow_drift' is unsigned" in message
    lab.nothing_planted_ran()


def test_a_forged_cancel_withholds_cells_and_says_so(lab: Lab) -> None:
    """Withholding is not prevented, but reported: the worker skips the cells of a run
    someone cancelled, status says so and the result names the missing cells (``resume``
    sends them again)."""
    run_id, _ = lab.submit("forged-cancel")
    lab.raw.r.hset(C.key_state(run_id), "cancelled", "true")
    send(lab.url, QUEUE, run_id, [("baseline", 0, lab.raw.manifest(run_id)["seeds"][0])])
    _wait_until_skipped(lab, run_id)
    status = lab.cli("status", run_id)
    assert status.returncode == 0 and status.stdout.count("state: cancelled") == 1
    result = lab.cli("result", run_id)
    assert "partial: 6 cells without a record" in result.stdout, result.stdout
    lab.nothing_planted_ran()


def _wait_until_skipped(lab: Lab, run_id: str) -> None:
    import time

    deadline = time.time() + 60
    while not lab.raw.r.scard(C.key_skipped(run_id)):
        assert time.time() < deadline, lab.worker.text()[-2000:]
        time.sleep(0.1)


def test_forged_counters_and_attempts_withhold_a_cell_and_say_so(lab: Lab) -> None:
    """Counters and attempt counts are not signed: forging them can make status lie and a
    worker give a cell up as lost (withholding), but the result - recomputed from signed
    records - names the failed cell and keeps every true number."""
    run_id, _ = lab.submit("forged-attempts")
    lab.raw.r.hset(C.key_attempts(run_id), "baseline:0", 99)
    lab.raw.r.hset(C.key_counters(run_id), "ok:up", 50)
    lab.release(run_id)
    data = json.loads(lab.cli("result", run_id, "--format", "json").stdout)
    assert "worker lost" in json.dumps(data["error_details"]["baseline_rep_0"])
    assert data["provenance"]["signatures"]["records_tampered"] == []
    table = lab.cli("result", run_id).stdout
    assert "signatures: manifest verified; 6 of 6 records verified" in table, table
    assert "errors: 1 failed cells: baseline_rep_0" in table, table
    assert "has no CRYSTALLIZE_DIST_SECRET" not in lab.worker.text()  # it has one


# --- reading: nothing imported, files only under the reader's root ---------------------------
def evil_source(lab: Lab) -> str:
    return planted(lab.root / "plant", "evil_file").read_text()


def _forged_record(run_id: str, artifacts: list[dict[str, Any]]) -> str:
    rec = {
        "condition": "baseline",
        "replicate": 0,
        "seed": 1,
        "status": "ok",
        "metrics": {"x": [0.5]},
        "error": None,
        "artifacts": artifacts,
    }
    return json.dumps(rec) + "\n[]"


def test_reading_a_forged_run_imports_nothing_and_writes_only_under_the_readers_root(
    lab: Lab,
) -> None:
    """A reader without the secret cannot tell a forged run, but reading it still imports
    no code and writes no file outside its own artifact root."""
    evil = planted(lab.root / "reader", "evil_reader")
    victim = lab.root / "victim"
    victim.mkdir()
    run_id = "20990101-000005-a1a1a1"
    manifest = forged_manifest(run_id, str(evil))
    manifest["experiment"]["artifact_root"] = str(victim)
    manifest["experiment"]["artifacts"] = {
        "root_dir": str(victim),
        "folder": "../../escape",
        "version": 0,
        "artifact_retention": 1,
        "versioned": True,
    }
    good = b"fine"
    good_sha = hashlib.sha256(good).hexdigest()
    altered_sha = hashlib.sha256(b"what the record says").hexdigest()
    lab.raw.put_blob(blob_key(good_sha), good)
    lab.raw.put_blob(blob_key(altered_sha), b"what the attacker wrote")
    arts = [
        {"name": ".bashrc", "path": "/x", "relative": ".bashrc", "sha256": good_sha},
        {"name": "up", "path": "/x", "relative": "../../escaped.txt", "sha256": good_sha},
        {"name": "abs", "path": "/x", "relative": str(victim / "abs.txt"), "sha256": good_sha},
        {"name": "alt", "path": "/x", "relative": "ok/altered.txt", "sha256": altered_sha},
    ]
    lab.raw.forge_run(run_id, manifest)
    lab.raw.put_record(run_id, "baseline:0", _forged_record(run_id, arts))
    lab.raw.r.hset(C.key_counters(run_id), mapping={"ok": 1, "ok:baseline": 1})
    arts_dir = lab.root / "reader" / "arts"
    waited = lab.cli(
        "wait",
        run_id,
        "--no-progress",
        "--timeout",
        "30",
        "--artifacts-dir",
        str(arts_dir),
        secret=False,
    )
    assert waited.returncode == 0, waited.stderr
    assert "note: the run's files (metadata.json, results.json) are not written" in waited.stderr
    for args in (
        ["status", run_id],
        ["list"],
        ["result", run_id, "--artifacts-dir", str(arts_dir)],
    ):
        out = lab.cli(*args, secret=False)
        assert out.returncode == 0, out.stderr
    lab.nothing_planted_ran()
    assert list(victim.iterdir()) == []
    for outside in (lab.root, lab.root / "reader"):
        assert not (outside / "escaped.txt").exists() and not (outside / "escape").exists()
    assert {p.name for p in arts_dir.iterdir()} == {".bashrc"}
    assert (arts_dir / ".bashrc").read_bytes() == good  # inside the reader's own root
    assert not (arts_dir / "ok" / "altered.txt").exists()
    text = out.stdout
    assert text.count("its path or sha256 is not valid; not written") == 2, text
    assert text.count("do not hash to its sha256") == 1, text
    assert "hypotheses not verified: reading a run imports no code" in text
    assert "signatures: not verified" in text
    # with the reader's own experiment, hypotheses are verified only for the submitted code
    mine = write_experiment(lab.root / "reader" / "mine")
    out = lab.cli("result", run_id, "--experiment", str(mine), secret=False)
    assert "the experiment given has fingerprint" in out.stdout
    lab.nothing_planted_ran()


# --- records --------------------------------------------------------------------------------------
def _altered(raw: bytes) -> bytes:
    """The stored record with one number changed (``m``: its metrics in the compact form,
    see crystallize_dist/distributed/store/compact.py)."""
    text = raw.decode()
    head, _, rest = text.partition("\n")
    rec = json.loads(head)
    rec["m"]["x"] = [12345.0]
    return (json.dumps(rec, separators=(",", ":")) + "\n" + rest).encode()


@pytest.mark.parametrize(
    "change", ["altered", "moved", "other-run", "unsigned", "malformed", "deleted"]
)
def test_a_changed_record_is_reported_and_its_numbers_are_not_used(
    lab: Lab, finished: str, change: str
) -> None:
    key = "baseline:1"
    original = lab.raw.record(finished, key)
    if change == "altered":
        forged = _altered(original)
    elif change == "moved":
        forged = lab.raw.record(finished, "baseline:0").replace(b'"replicate":0', b'"replicate":1')
    elif change == "other-run":
        other = lab.submit("other-run", queue=QUEUE, wait=True)[0]
        forged = lab.raw.record(other, key)
    elif change == "unsigned":
        forged = original.rpartition(b"\n")[0]
    elif change == "malformed":
        forged = original.rpartition(b"\n")[0] + "\nhmac-sha256:é".encode() + b"0" * 63
    try:
        if change == "deleted":
            lab.raw.r.hdel(C.key_records(finished), key)
        else:
            lab.raw.put_record(finished, key, forged)
        table = lab.cli("result", finished)
        # a withheld record leaves a partial result, which exits 1 (docs/bad-input.md, 59)
        assert table.returncode == (1 if change == "deleted" else 0), table.stderr
        data = json.loads(lab.cli("result", finished, "--format", "json").stdout)
    finally:
        lab.raw.put_record(finished, key, original)
    if change == "deleted":  # withheld: reported as a missing cell
        assert table.stdout.startswith("partial result: 1 cells have no record"), table.stdout
        assert "partial: 1 cells without a record: baseline:1" in table.stdout, table.stdout
        assert "digest: none (partial result)" in table.stdout and data["complete"] is False
        assert "manifest verified; 5 of 5 records verified" in table.stdout
        return
    lines = [line for line in table.stdout.splitlines() if line.startswith("signatures:")]
    assert lines == [
        "signatures: manifest verified; 5 of 6 records verified; 1 did not verify "
        "(baseline:1): counted as failed cells"
    ], table.stdout
    error = data["error_details"]["baseline_rep_1"]
    assert "TamperedRecordError" in json.dumps(error) and "numbers are not used" in json.dumps(
        error
    )
    assert 12345.0 not in data["metrics"]["baseline"]["x"]
    assert len(data["metrics"]["baseline"]["x"]) == 2


# --- worker stamps, artifact blobs, the runs index ------------------------------------------
def test_forged_and_altered_worker_stamps_are_left_out(lab: Lab, finished: str) -> None:
    workers = C.key_workers(finished)
    (node,) = [k.decode() for k in lab.raw.r.hkeys(workers)]
    original = lab.raw.r.hget(workers, node)
    assert original is not None
    altered = json.loads(original)
    altered["python"] = "0.0.1"
    lab.raw.r.hset(workers, mapping={node: json.dumps(altered), "evil@nowhere": '{"python": "x"}'})
    try:
        out = lab.cli("result", finished, "--format", "json")
    finally:
        lab.raw.r.hdel(workers, "evil@nowhere")
        lab.raw.r.hset(workers, node, original)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["provenance"].get("workers", {}) == {}
    notes = [line for line in out.stderr.splitlines() if "do not verify and are left out" in line]
    assert notes == [
        "note: 2 worker stamp(s) do not verify and are left out of the provenance: "
        + ", ".join(sorted([ascii(node), "'evil@nowhere'"]))  # in the order of their names
    ], out.stderr


def test_an_altered_artifact_blob_is_not_written(lab: Lab, finished: str) -> None:
    arts_of = {  # "a": the artifacts of a record in the compact form
        key.decode(): json.loads(raw.split(b"\n")[0])["a"][0]
        for key, raw in lab.raw.r.hgetall(C.key_records(finished)).items()
    }
    sha = arts_of["baseline:0"]["sha256"]
    hit = sorted(a["relative"] for a in arts_of.values() if a["sha256"] == sha)  # same bytes
    key = C.key_bundle(blob_key(sha))
    original = lab.raw.r.get(key)
    lab.raw.r.set(key, b"the attacker's bytes")
    arts = lab.root / "reader" / "blob-arts"
    try:
        out = lab.cli("result", finished, "--artifacts-dir", str(arts))
    finally:
        lab.raw.r.set(key, original or b"")
    assert out.returncode == 0, out.stderr
    written = sorted(p.relative_to(arts).as_posix() for p in arts.rglob("*") if p.is_file())
    assert written == sorted(a["relative"] for a in arts_of.values() if a["relative"] not in hit)
    assert all((arts / w).read_bytes() != b"the attacker's bytes" for w in written)
    notes = [line for line in out.stdout.splitlines() if "do not hash to its sha256" in line]
    assert [n.split()[2].rstrip(":") for n in notes] == hit, out.stdout


def test_an_altered_manifest_of_a_finished_run_is_refused_by_readers(
    lab: Lab, finished: str
) -> None:
    original = lab.raw.manifest(finished)
    lab.raw.put_manifest(finished, {**original, "seeds": [s + 1 for s in original["seeds"]]})
    try:
        line = one_line(lab.cli("result", finished), "does not match its signature")
        listed = lab.cli("list")
    finally:
        lab.raw.put_manifest(finished, original)
    assert finished in line
    row = next(r for r in listed.stdout.splitlines() if finished in r)
    assert "bad signature" in row, listed.stdout


def test_a_forged_runs_index_lists_only_run_ids_and_no_escape_codes(
    lab: Lab, finished: str
) -> None:
    forged = {"\x1b]0;pwned\x07": 1.0, "evil id; rm -rf": 2.0, "20990101-000009-999999": 3.0}
    lab.raw.r.zadd(C.KEY_RUNS, forged)
    try:
        out = lab.cli("list", "--limit", "100")
    finally:
        lab.raw.r.zrem(C.KEY_RUNS, *forged)
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "pwned" not in out.stdout and "rm -rf" not in out.stdout
    assert "20990101-000009-999999" not in out.stdout  # no such run: left out
    assert finished in out.stdout
    notes = [line for line in out.stdout.splitlines() if "runs index" in line]
    assert notes == ["note: 2 entries of the runs index are not run ids; left out"], out.stdout


def test_a_deleted_run_is_one_clear_line(lab: Lab) -> None:
    run_id = "20990101-000010-d0d0d0"
    lab.raw.forge_run(run_id, forged_manifest(run_id, "/nowhere.py"))
    lab.raw.r.delete(C.key_manifest(run_id))
    for verb in ("result", "status"):
        one_line(lab.cli(verb, run_id), f"no run '{run_id}'")


def test_the_threat_model_names_real_tests_and_the_readme_points_to_it() -> None:
    """Every row of docs/security.md names tests that exist; the README's Security section
    sends readers there."""
    from workers import ROOT

    doc = (ROOT / "docs" / "security.md").read_text()
    where = {
        "hostile": "tests/integration/test_hostile_writer.py",
        "security": "tests/integration/test_security.py",
        "bundle": "tests/distributed/test_bundle.py",
        "signing": "tests/distributed/test_signing.py",
    }
    rows = [line for line in doc.splitlines() if line.startswith("| ") and "::" in line]
    assert len(rows) >= 24
    for row in rows:
        refs = re.findall(r"`([\w/.]+)::(\w+)`", row)
        assert refs, row
        for path, name in refs:
            path = where.get(path, path)
            assert re.search(rf"def {name}\b", (ROOT / path).read_text()), (path, name)
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Security\n", 1)[1].split("\n## ", 1)[0]
    assert "docs/security.md" in section


# --- the report page ------------------------------------------------------------------------
EVIL = '<script>document.title="owned"</script><img src="http://127.0.0.1:9/x" onerror="1">'


def test_markup_in_store_text_is_shown_as_text_in_the_report(
    lab: Lab, finished: str, tmp_path: Path
) -> None:
    """Records changed to carry HTML in a metric name, an error type and message, a
    traceback and a worker's node name, and a forged heartbeat for that node with HTML in
    its host, pool and versions: a reader without the secret (who reads them unverified)
    gets a report that shows all of it as text, runs no script and loads nothing; with the
    secret the changed records are not used at all."""
    from browser import Browser
    from report_checks import check_page

    node = f"evil{EVIL}@nowhere"
    keys = ("baseline:0", "up:1")
    originals = {k: lab.raw.record(finished, k) for k in keys}
    # records in the compact form (crystallize_dist/distributed/store/compact.py): "m" its
    # metrics, "s" status, "e" error, "w" [pid, node number or name]
    first = json.loads(originals["baseline:0"].split(b"\n")[0])
    first["m"] = {**first["m"], EVIL: [1.0]}
    second = json.loads(originals["up:1"].split(b"\n")[0])
    second.update(s="error", m={}, w=[1, node])
    second["e"] = {"type": EVIL, "message": EVIL, "traceback": EVIL}
    beat = {"node": node, "host": EVIL, "pool": EVIL, "pid": 1, "concurrency": 1,
            "versions": {"python": EVIL}, "last_beat": time.time()}  # fmt: skip
    browser = Browser(tmp_path / "chromium")
    try:
        lab.raw.put_record(finished, "baseline:0", json.dumps(first))
        lab.raw.put_record(finished, "up:1", json.dumps(second))
        lab.raw.r.set(C.key_node(node), json.dumps(beat))
        lab.raw.r.zadd(C.KEY_NODES, {node: time.time()})
        out = lab.cli("report", finished, "-o", str(tmp_path / "open.html"), secret=False)
        assert out.returncode == 0, out.stderr
        page = check_page(browser, tmp_path / "open.html")
        assert page.scripts == 0 and browser.evaluate("document.title") != "owned"
        assert page.text.count(EVIL) >= 5, page.text  # metric, error, traceback, node, beat
        html_text = (tmp_path / "open.html").read_text()
        assert "<script>document" not in html_text and '<img src="http' not in html_text
        signed = lab.cli("report", finished, "-o", str(tmp_path / "signed.html"))
        assert signed.returncode == 0, signed.stderr
        text = check_page(browser, tmp_path / "signed.html").text
        assert EVIL not in text and "TamperedRecordError" in text
    finally:
        browser.close()
        for key, raw in originals.items():
            lab.raw.put_record(finished, key, raw)
        lab.raw.r.delete(C.key_node(node))
        lab.raw.r.zrem(C.KEY_NODES, node)
