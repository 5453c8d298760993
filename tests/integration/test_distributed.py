"""The distributed engine end to end: CLI subprocesses, real redis-server, real workers.

Every run's digest is compared with a SerialExecution run of the same experiment and seed.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from workers import ROOT, Worker, run_cli

from crystallize_dist import SerialExecution, load_experiment
from crystallize_dist.config import Settings
from crystallize_dist.distributed.publisher import enqueue
from crystallize_dist.distributed.results import load_result
from crystallize_dist.distributed.status import run_status
from crystallize_dist.distributed.store import open_store
from crystallize_dist.distributed.waiting import wait_for
from crystallize_dist.errors import RunTimeoutError

EXAMPLES = ROOT / "examples"
SEED = 7
REFS = [str(p) for p in sorted(EXAMPLES.glob("*.py"))] + [
    str(p.parent) for p in sorted(EXAMPLES.glob("*/config.yaml"))
]
_serial: dict[str, str] = {}


def serial_digest(ref: str, seed: int = SEED, replicates: int | None = None) -> str:
    key = f"{ref}|{seed}|{replicates}"
    if key not in _serial:
        exp, _ = load_experiment(ref)
        serial = SerialExecution()
        exp.plugins.append(serial)
        try:
            _serial[key] = exp.run(seed=seed, replicates=replicates).digest
        finally:
            exp.plugins.remove(serial)
    return _serial[key]


@pytest.fixture(scope="module")
def broker(redis_server: object) -> Iterator[str]:
    url: str = redis_server.url  # type: ignore[attr-defined]
    redis.Redis.from_url(url).flushall()
    yield url


@pytest.fixture(scope="module")
def workers2(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """One worker with 2 prefork processes, for the module."""
    logs = tmp_path_factory.mktemp("logs")
    worker = Worker(broker, logs, name="pair", concurrency=2, cwd=logs).wait_ready()
    yield worker
    worker.stop()


def submit_json(ref: str, broker: str, cwd: Path, *extra: str,
                env: dict[str, str] | None = None) -> tuple[str, dict[str, object]]:
    """``submit REF --wait --format json`` with the test seed; (run id, result JSON)."""
    out = run_cli("submit", ref, "--wait", "--format", "json", "--seed", str(SEED),
                  "--no-progress", "--timeout", "120", *extra, broker_url=broker, cwd=cwd,
                  env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    return result["provenance"]["run_id"], result


@pytest.mark.parametrize("ref", REFS, ids=lambda r: Path(r).name)
def test_every_example_matches_serial_and_result_reads_back(
    ref: str, broker: str, workers2: Worker, tmp_path: Path
) -> None:
    run_id, submitted = submit_json(ref, broker, tmp_path)
    assert submitted["digest"] == serial_digest(ref)
    assert submitted["provenance"]["run_id"] == run_id  # type: ignore[index]
    # A new process, after the submitter exited, reads the same result; its hypotheses are
    # verified with the code the reader passes (reading alone imports no code).
    args = ["result", run_id, "--format", "json"]
    again = run_cli(*args, "--experiment", ref, broker_url=broker, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == submitted
    bare = json.loads(run_cli(*args, broker_url=broker, cwd=tmp_path).stdout)
    assert bare["digest"] == submitted["digest"] and bare["metrics"] == submitted["metrics"]
    if submitted["hypotheses"]:
        assert "reading a run imports no code" in bare["provenance"]["hypothesis_note"]


@pytest.mark.parametrize("layout", ["1x1-prefork", "3x1-prefork", "1x2-threads", "1x1-solo"])
def test_same_digest_with_any_number_of_workers_and_pools(
    layout: str, broker: str, tmp_path: Path
) -> None:
    count, conc_pool = layout.split("x")
    conc, pool = conc_pool.split("-")
    queue = f"q-{layout}"
    workers = [
        Worker(
            broker,
            tmp_path,
            name=f"{layout}-{i}",
            concurrency=int(conc),
            pool=pool,
            cwd=tmp_path,
            env={"CRYSTALLIZE_DIST_QUEUE": queue},
        )
        for i in range(int(count))
    ]
    try:
        for w in workers:
            w.wait_ready()
        # threads share the global random / numpy generators: use an experiment whose steps
        # draw from the per-cell ctx.rng, as the threads pool requires
        ref = str(EXAMPLES / ("train_eval.py" if pool == "threads" else "quickstart.py"))
        _, result = submit_json(ref, broker, tmp_path, env={"CRYSTALLIZE_DIST_QUEUE": queue})
        assert result["digest"] == serial_digest(ref)
        nodes = {c["worker"]["node"] for c in result["provenance"]["cells"].values()}
        assert nodes <= {f"{layout}-{i}@{w.host}" for i, w in enumerate(workers)}
        if int(count) == 3:
            assert len(nodes) >= 2, nodes  # the cells really were spread over workers
    finally:
        for w in workers:
            w.stop()


def test_celery_execution_from_python_matches_serial(
    broker: str, workers2: Worker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from crystallize_dist import CeleryExecution

    monkeypatch.chdir(tmp_path)
    ref = str(EXAMPLES / "quickstart.py")
    exp, _ = load_experiment(ref)
    plugin = CeleryExecution(broker_url=broker, timeout=120)
    exp.plugins.append(plugin)
    try:
        result = exp.run(seed=SEED)
    finally:
        exp.plugins.remove(plugin)
    assert result.digest == serial_digest(ref)
    assert result.provenance["run_id"] == plugin.run_id
    assert result.provenance["executor"] == "celery"


def test_celery_execution_runs_a_few_of_the_experiments_treatments(
    broker: str, workers2: Worker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``run(treatments=[...])`` picking some of the experiment's own treatments, on a copy
    the module's factory built (found by its fingerprint); a treatment of the run's own is
    refused, since workers load the experiment by reference."""
    from crystallize_dist import CeleryExecution, Treatment
    from crystallize_dist.errors import InvalidOptionError

    monkeypatch.chdir(tmp_path)
    ref = str(EXAMPLES / "quickstart.py")
    module_exp, _ = load_experiment(ref)
    build = sys.modules[type(module_exp.datasource).__module__].build
    serial = build().run(treatments=[], seed=SEED)
    assert list(serial.metrics.treatments) == []
    exp = build(CeleryExecution(broker_url=broker, timeout=120))
    assert exp.run(treatments=[], seed=SEED).digest == serial.digest
    picked = exp.run(treatments=list(exp.treatments), seed=SEED)
    assert picked.digest == build().run(seed=SEED).digest
    with pytest.raises(InvalidOptionError, match=r"own treatments.*'louder'"):
        exp.run(treatments=[Treatment("louder", {"shift": 9.0})], seed=SEED)


UNGUARDED_DRIVER = """
import os
from crystallize_dist import CeleryExecution, DataSource, Experiment, Pipeline, PipelineStep

class Zero(DataSource):
    def fetch(self, ctx):
        return 0.0

class Keep(PipelineStep):
    def __call__(self, data, ctx):
        return data, {"x": data}

experiment = Experiment(Zero(), Pipeline([Keep()]), replicates=3, plugins=[
    CeleryExecution(broker_url=os.environ["CRYSTALLIZE_DIST_BROKER_URL"], timeout=90)])
result = experiment.run()  # no main guard: a worker importing this file runs it too
print(sorted({e.error_type for e in result.errors.values()}), len(result.errors))
print(next(iter(result.errors.values())))
"""


def test_an_unguarded_driver_script_fails_its_cells_instead_of_submitting_from_workers(
    broker: str, workers2: Worker, tmp_path: Path
) -> None:
    """A script that runs its experiment with CeleryExecution at import: the workers that
    import it must not submit runs of their own (they would wait on themselves)."""
    import subprocess
    import sys

    from workers import cli_env

    (tmp_path / "unguarded.py").write_text(UNGUARDED_DRIVER)
    store = open_store(broker)
    before = set(store.run_ids(limit=1000))
    out = subprocess.run([sys.executable, "unguarded.py"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env=cli_env(broker))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "['ExperimentLoadError'] 3"
    assert "cannot submit a run from inside a crystallize-dist worker" in out.stdout
    assert 'if __name__ == "__main__"' in out.stdout
    assert len(set(store.run_ids(limit=1000)) - before) == 1  # no run from a worker


SET_ORDER = """
from crystallize_dist import DataSource, Experiment, Pipeline, PipelineStep

class Words(DataSource):
    def fetch(self, ctx):
        return {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"}

class FirstWord(PipelineStep):
    def __call__(self, data, ctx):  # depends on set order, so on PYTHONHASHSEED
        return data, {"first": sorted(data).index(next(iter(data)))}

experiment = Experiment(Words(), Pipeline([FirstWord()]), replicates=2)
"""


def test_local_runs_agree_whatever_the_hash_seed_of_the_shell(tmp_path: Path) -> None:
    """Set iteration order depends on PYTHONHASHSEED: ``--local`` runs its cells with the
    workers' hash seed, so two runs from a shell without one give the same digest."""
    src = tmp_path / "set_order.py"
    src.write_text(SET_ORDER)
    digests = set()
    for _ in range(3):
        out = run_cli("submit", str(src), "--local", "--format", "json", "--seed", "1",
                      "--no-progress", cwd=tmp_path)  # run_cli drops PYTHONHASHSEED
        assert out.returncode == 0, out.stderr
        digests.add(json.loads(out.stdout)["digest"])
    assert len(digests) == 1


def test_local_matches_serial(tmp_path: Path) -> None:
    ref = str(EXAMPLES / "quickstart.py")
    out = run_cli(
        "submit",
        ref,
        "--local",
        "--workers",
        "2",
        "--format",
        "json",
        "--seed",
        str(SEED),
        "--no-progress",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    run_id = data["provenance"]["run_id"]
    assert data["digest"] == serial_digest(ref)
    # status / result / list work on the embedded store from a new process
    status = run_cli("status", run_id.strip(), "--local", "--json", cwd=tmp_path)
    assert json.loads(status.stdout)["finished"] is True
    again = run_cli("result", run_id.strip(), "--local", "--format", "json", cwd=tmp_path)
    assert json.loads(again.stdout) == data


def test_a_task_published_twice_counts_a_duplicate_and_keeps_the_digest(
    broker: str, workers2: Worker, tmp_path: Path
) -> None:
    ref = str(EXAMPLES / "quickstart.py")
    run_id, first = submit_json(ref, broker, tmp_path)
    settings = Settings.from_env({}, broker_url=broker)
    store = open_store(broker)
    manifest = store.manifest(run_id)
    from crystallize_dist.engine.plan import RunPlan

    cell = next(RunPlan.from_dict(manifest["plan"]).cells())
    enqueue(settings, run_id, [cell])
    deadline = time.time() + 30
    while run_status(store, run_id).duplicates < 1 and time.time() < deadline:
        time.sleep(0.1)
    result = load_result(store, run_id)
    assert result.digest == first["digest"] == serial_digest(ref)
    assert result.provenance["cells"][f"{cell.condition}:0"]["duplicates"] == 1
    assert run_status(store, run_id).duplicates == 1


def test_resume_after_lost_tasks_completes_with_the_same_digest(
    broker: str, tmp_path: Path
) -> None:
    ref = str(EXAMPLES / "quickstart.py")
    queue = "q-resume"
    env = {"CRYSTALLIZE_DIST_QUEUE": queue}
    out = run_cli("submit", ref, "--seed", str(SEED), broker_url=broker, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.split()[0]
    client = redis.Redis.from_url(broker)
    assert client.llen(queue) == 40
    lost = client.rpop(queue, 7)  # seven messages vanish from the broker
    assert lost is not None and len(lost) == 7
    worker = Worker(broker, tmp_path, name="resumer", concurrency=2, cwd=tmp_path, env=env)
    try:
        worker.wait_ready()
        store = open_store(broker)
        with pytest.raises(RunTimeoutError):
            wait_for(store, run_id, timeout=8)
        status = run_status(store, run_id)
        assert status.pending == 7 and status.done == 33
        out = run_cli("resume", run_id, "--wait", broker_url=broker, cwd=tmp_path, env=env)
        assert out.returncode == 0, out.stderr
        assert "7 cells" in out.stdout
        assert load_result(store, run_id).digest == serial_digest(ref)
        assert load_result(store, run_id).provenance["resumes"] == 1
    finally:
        worker.stop()


@pytest.mark.parametrize("per_task", ["3", "16", "auto"])
def test_digest_is_identical_with_every_batching_setting(
        per_task: str, broker: str, workers2: Worker, tmp_path: Path) -> None:
    ref = str(EXAMPLES / "quickstart.py")
    _, result = submit_json(ref, broker, tmp_path, "--cells-per-task", per_task)
    assert result["digest"] == serial_digest(ref)
    assert result["provenance"]["options"]["cells_per_task"] >= 1  # type: ignore[index]
    cells = result["provenance"]["cells"]  # type: ignore[index]
    assert len(cells) == 40 and all(c["attempts"] == 1 for c in cells.values())
    local = run_cli("submit", ref, "--local", "--workers", "2", "--cells-per-task", per_task,
                    "--format", "json", "--seed", str(SEED), "--no-progress", cwd=tmp_path)
    assert json.loads(local.stdout)["digest"] == serial_digest(ref)


def test_a_redelivered_batch_reruns_only_cells_without_a_record(
        broker: str, workers2: Worker, tmp_path: Path) -> None:
    ref = str(EXAMPLES / "quickstart.py")
    run_id, first = submit_json(ref, broker, tmp_path, "--cells-per-task", "8")
    store = open_store(broker)
    from crystallize_dist.engine.plan import RunPlan

    cells = list(RunPlan.from_dict(store.manifest(run_id)["plan"]).cells())[:8]
    store.delete_records(run_id, [f"{c.condition}:{c.replicate}" for c in cells[5:]])
    enqueue(Settings.from_env({}, broker_url=broker), run_id, cells, 8)  # the batch again
    wait_for(store, run_id, timeout=60)
    result = load_result(store, run_id)
    assert result.digest == first["digest"]
    prov = result.provenance["cells"]
    assert [prov[f"{c.condition}:{c.replicate}"]["duplicates"] for c in cells] == \
        [1] * 5 + [0] * 3
    # deleting a record gives the cell a fresh attempt budget (as resume --retry-failed does)
    assert [prov[f"{c.condition}:{c.replicate}"]["attempts"] for c in cells] == [1] * 8


EDITED = """
from crystallize_dist import DataSource, Experiment, Pipeline, PipelineStep, Treatment
from wk_helper import VALUE


class Zero(DataSource):
    def fetch(self, ctx):
        return 0.0


class Add(PipelineStep):
    def __call__(self, data, ctx):
        return data, {"value": VALUE * FACTOR + ctx.get("shift", 0.0)}


FACTOR = 1
experiment = Experiment(Zero(), Pipeline([Add()]), replicates=6,
                        treatments=[Treatment("shifted", {"shift": 0.5})])
"""


def test_a_warm_worker_runs_an_edited_experiment_as_it_now_is(
    broker: str, workers2: Worker, tmp_path: Path
) -> None:
    """Submit, edit the helper (then the experiment file) and submit again to the same
    warm worker processes: each run has the code it was submitted with - never the code
    a process loaded for an earlier run."""
    folder = tmp_path / "edited"
    folder.mkdir()
    exp_file, helper = folder / "wk_exp.py", folder / "wk_helper.py"
    exp_file.write_text(EDITED)
    digests = set()
    for step, (value, factor) in enumerate([(1.0, 1), (2.0, 1), (2.0, 10)]):
        helper.write_text(f"VALUE = {value}\n")
        exp_file.write_text(EDITED.replace("FACTOR = 1", f"FACTOR = {factor}"))
        _, result = submit_json(str(exp_file), broker, tmp_path)
        metrics = result["metrics"]["baseline"]  # type: ignore[index]
        assert metrics["value"] == [value * factor] * 6, step
        here, _ = load_experiment(str(exp_file))  # this process reloads the edit too
        assert result["digest"] == here.run(seed=SEED).digest, step
        digests.add(result["digest"])
    assert len(digests) == 3


ARTIFACTS = """
from crystallize_dist import DataSource, Experiment, Pipeline, PipelineStep, Treatment


class Zero(DataSource):
    def fetch(self, ctx):
        return 0.0


class Trace(PipelineStep):
    def __call__(self, data, ctx):
        text = f"{ctx.get('condition')}:{ctx.get('replicate')}:{ctx.rng.integers(1000)}"
        ctx.artifacts.add("trace.txt", text.encode())
        return data, {"value": 1.0}


experiment = Experiment(Zero(), Pipeline([Trace()]), replicates=4, name="shipped",
                        treatments=[Treatment("other", {"x": 1})])
"""


def test_artifacts_that_workers_write_come_back_to_the_submitter(
    broker: str, workers2: Worker, tmp_path: Path
) -> None:
    """The worker runs in its own folder (another machine, as far as paths go): the files
    its cells write reach the submitter's artifact root, every condition and replicate
    together, with the bytes a serial run writes; ``result`` from a third folder too."""
    exp_file = tmp_path / "art_exp.py"
    exp_file.write_text(ARTIFACTS)
    here = tmp_path / "submitter"
    here.mkdir()
    run_id, submitted = submit_json(str(exp_file), broker, here)
    paths = submitted["artifact_paths"]["trace.txt"]  # type: ignore[index]
    serial_root = tmp_path / "serial"
    serial_root.mkdir()
    exp, _ = load_experiment(str(exp_file))
    import os

    cwd = os.getcwd()
    os.chdir(serial_root)
    try:
        exp.run(seed=SEED)
    finally:
        os.chdir(cwd)
    for cond in ("baseline", "other"):
        folder = Path(paths[cond]).parent.parent.parent  # .../v0/replicate_0/<cond>/Trace
        assert folder.is_relative_to(here / "data"), paths[cond]
        for rep in range(4):
            rel = Path("data/shipped/v0") / f"replicate_{rep}" / cond / "Trace" / "trace.txt"
            assert (here / rel).read_bytes() == (serial_root / rel).read_bytes()
    reader = tmp_path / "reader"
    reader.mkdir()
    out = run_cli("result", run_id, "--format", "json", broker_url=broker, cwd=reader)
    assert out.returncode == 0, out.stderr
    assert (reader / "data/shipped/v0/replicate_3/other/Trace/trace.txt").is_file()


def test_submitted_runs_of_a_versioned_artifact_plugin_each_get_a_version(
    broker: str, workers2: Worker, tmp_path: Path
) -> None:
    """The submitter picks each run's version folder; the workers write there, and the
    run's files (metadata, results, markers) follow with the result."""
    exp_file = tmp_path / "versioned_exp.py"
    exp_file.write_text(ARTIFACTS.replace(
        "from crystallize_dist import ", "from crystallize_dist import ArtifactPlugin, ").replace(
        'name="shipped",', 'name="shipped", plugins=[ArtifactPlugin(versioned=True)],'))
    here = tmp_path / "submitter"
    here.mkdir()
    digests = {submit_json(str(exp_file), broker, here)[1]["digest"] for _ in range(2)}
    assert digests == {serial_digest(str(exp_file))}
    root = here / "data" / "shipped"
    assert sorted(p.name for p in root.iterdir()) == ["v0", "v1"]
    for v in ("v0", "v1"):
        assert (root / v / "replicate_3" / "other" / "Trace" / "trace.txt").is_file()
        assert (root / v / "other" / ".crystallize_complete").is_file()
        assert json.loads((root / v / "metadata.json").read_text())["name"] == "shipped"
