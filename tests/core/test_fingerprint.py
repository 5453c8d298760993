"""The experiment fingerprint covers the code the experiment runs, helpers included."""

from __future__ import annotations

import os
from pathlib import Path

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
    _bump(folder / "helper.py", "def scale(x):\n    return 3 * x\n")
    assert exp.fingerprint() != before
