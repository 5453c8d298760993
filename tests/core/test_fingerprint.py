"""The experiment fingerprint covers the code the experiment runs, helpers included."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crystallize_dist import load_experiment

EXPERIMENT = '''
from crystallize_dist import DataSource, Experiment, Pipeline, PipelineStep
from helper import scale


class Zero(DataSource):
    def fetch(self, ctx):
        return 1.0


class Scale(PipelineStep):
    def __call__(self, data, ctx):
        return data, {"x": scale(data)}


experiment = Experiment(Zero(), Pipeline([Scale()]))
'''


def _bump(path: Path, text: str) -> None:
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))


def test_changing_an_imported_helper_changes_the_fingerprint(tmp_path: Path) -> None:
    folder = tmp_path / "fp_exp"
    folder.mkdir()
    (folder / "fp_experiment.py").write_text(EXPERIMENT)
    (folder / "helper.py").write_text("def scale(x):\n    return 2 * x\n")
    (folder / ".hidden").mkdir()
    exp, _ = load_experiment(str(folder / "fp_experiment.py"))
    before = exp.fingerprint()
    _bump(folder / ".hidden" / "tool.py", "x = 1\n")  # ignored, as bundles ignore it
    (folder / "notes.txt").write_text("not code")
    assert exp.fingerprint() == before
    _bump(folder / "scratch.py", "print('a file nothing imports')\n")  # not the experiment's
    assert exp.fingerprint() == before
    _bump(folder / "helper.py", "def scale(x):\n    return 3 * x\n")
    assert exp.fingerprint() != before


PACKAGE_EXPERIMENT = '''
from crystallize_dist import DataSource, Experiment, Pipeline, PipelineStep
from . import maths
from .tools.io import tag


class One(DataSource):
    def fetch(self, ctx):
        return 1.0


class Step(PipelineStep):
    def __call__(self, data, ctx):
        from fp_pkg.late import late_value  # imported inside a function: still counts

        return data, {"x": maths.double(data) + late_value(), "tag": tag()}


experiment = Experiment(One(), Pipeline([Step()]))
'''


def test_the_fingerprint_follows_imports_through_a_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "fp_pkg"
    (pkg / "tools").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "tools" / "__init__.py").write_text("")
    (pkg / "exp.py").write_text(PACKAGE_EXPERIMENT)
    files = {
        "maths.py": "def double(x):\n    return 2 * x\n",
        "tools/io.py": "def tag():\n    return 'a'\n",
        "late.py": "def late_value():\n    return 0.5\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    exp, _ = load_experiment("fp_pkg.exp:experiment")
    assert exp.run(replicates=1).metrics.baseline.metrics["x"] == [2.5]
    before = exp.fingerprint()
    _bump(pkg / "unused.py", "x = 1\n")
    assert exp.fingerprint() == before
    for name, text in files.items():  # each imported file counts, however it is imported
        _bump(pkg / name, text + "# changed\n")
        after = exp.fingerprint()
        assert after != before, name
        before = after


NEIGHBOUR_EXPERIMENT = """
from crystallize_dist import DataSource, Experiment, Pipeline, PipelineStep
from nb_helper import value


class One(DataSource):
    def fetch(self, ctx):
        return 0.0


class Step(PipelineStep):
    def __call__(self, data, ctx):
        return data, {"v": value()}


experiment = Experiment(One(), Pipeline([Step()]), replicates=1)
"""


def test_experiments_from_two_folders_each_get_their_own_neighbours(tmp_path: Path) -> None:
    """One process (a warm worker) loads experiments from two folders that both have a
    ``nb_helper.py`` and an ``nb_exp.py``: each runs with its own helper, and both still
    pickle by reference (as the process pool sends them)."""
    import pickle

    exps = []
    for name, value in (("a", 1.0), ("b", 2.0)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "nb_exp.py").write_text(NEIGHBOUR_EXPERIMENT)
        (folder / "nb_helper.py").write_text(f"def value():\n    return {value}\n")
        exps.append(load_experiment(str(folder / "nb_exp.py"))[0])
    a, b = exps
    assert a.run().metrics.baseline.metrics["v"] == [1.0]
    assert b.run().metrics.baseline.metrics["v"] == [2.0]
    for exp, value in ((a, 1.0), (b, 2.0)):
        copy = pickle.loads(pickle.dumps(exp))
        assert copy.run().metrics.baseline.metrics["v"] == [value]
    again, _ = load_experiment(str(tmp_path / "a" / "nb_exp.py"))  # the cached module
    assert again.run().metrics.baseline.metrics["v"] == [1.0]


def _v(exp: object) -> list[float]:
    return list(exp.run().metrics.baseline.metrics["v"])  # type: ignore[attr-defined]


def test_an_edited_experiment_or_helper_is_loaded_again(tmp_path: Path) -> None:
    """A long-lived process (a warm worker, a notebook) loads an experiment, the user edits
    the experiment file or the helper it imports, and loads it again: it runs the code as
    it now is, and its fingerprint says so (a stale module must never pass for the new
    code). Unchanged files are not loaded again."""
    folder = tmp_path / "edited"
    folder.mkdir()
    exp_file = folder / "ed_exp.py"
    exp_file.write_text(NEIGHBOUR_EXPERIMENT.replace("nb_helper", "ed_helper"))
    (folder / "ed_helper.py").write_text("def value():\n    return 1.0\n")
    first, _ = load_experiment(str(exp_file))
    assert _v(first) == [1.0]
    fingerprint = first.fingerprint()
    same, _ = load_experiment(str(exp_file))
    assert type(same.datasource) is type(first.datasource)  # nothing changed: the cached module

    _bump(folder / "ed_helper.py", "def value():\n    return 2.0\n")
    second, _ = load_experiment(str(exp_file))
    assert _v(second) == [2.0]
    assert second.fingerprint() != fingerprint

    _bump(exp_file, exp_file.read_text().replace('{"v": value()}', '{"v": value() * 10}'))
    third, _ = load_experiment(str(exp_file))
    assert _v(third) == [20.0]
    assert _v(first) == [1.0]  # an experiment already loaded keeps the code it was built with


def test_config_folders_get_their_own_and_their_edited_helpers(tmp_path: Path) -> None:
    """Two config folders whose steps import a same-named helper: each runs with its own,
    in one process; and an edited helper is read again on the next load."""
    from crystallize_dist import Experiment

    def folder(name: str, magic: float) -> Path:
        root = tmp_path / name
        root.mkdir()
        (root / "config.yaml").write_text(
            "replicates: 1\ndatasource: zero\nsteps:\n  - magic\n"
        )
        (root / "datasources.py").write_text(
            "from crystallize_dist import data_source\n\n"
            "@data_source\ndef zero(ctx):\n    return 0.0\n"
        )
        (root / "steps.py").write_text(
            "from crystallize_dist import pipeline_step\nfrom cf_helpers import MAGIC\n\n"
            "@pipeline_step()\ndef magic(data, ctx):\n    return data, {'v': MAGIC}\n"
        )
        (root / "cf_helpers.py").write_text(f"MAGIC = {magic}\n")
        return root

    a, b = folder("a", 3.0), folder("b", 7.0)
    for _ in range(2):
        assert _v(Experiment.from_yaml(a)) == [3.0]
        assert _v(Experiment.from_yaml(b)) == [7.0]
    _bump(b / "cf_helpers.py", "MAGIC = 8.0\n")
    assert _v(Experiment.from_yaml(b)) == [8.0]


def test_the_import_closure_hashes_the_same_wherever_the_folder_is(tmp_path: Path) -> None:
    """Files are named from the nearest folder the experiment imports from, so a copy of
    the code elsewhere (another machine, a code bundle) hashes the same."""
    import shutil

    from crystallize_dist.engine.fingerprint import closure_hash

    first = tmp_path / "one" / "fp_pkg"
    (first / "tools").mkdir(parents=True)
    (first / "__init__.py").write_text("")
    (first / "tools" / "__init__.py").write_text("")
    (first / "exp.py").write_text(PACKAGE_EXPERIMENT)
    (first / "maths.py").write_text("def double(x):\n    return 2 * x\n")
    (first / "tools" / "io.py").write_text("def tag():\n    return 'a'\n")
    (first / "late.py").write_text("def late_value():\n    return 0.5\n")
    second = tmp_path / "elsewhere" / "deeper" / "fp_pkg"
    shutil.copytree(first, second)
    one, two = closure_hash([first / "exp.py"]), closure_hash([second / "exp.py"])
    assert one is not None and one == two
    (second / "maths.py").write_text("def double(x):\n    return 4 * x\n")
    assert closure_hash([second / "exp.py"]) != one
