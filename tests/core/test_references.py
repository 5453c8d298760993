"""find_ref: the reference a worker loads an in-process experiment by (CeleryExecution).

A driver script that imports the experiment from its own module must hand workers that
module, not itself: a worker imports the script, which would run the driver's code again.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from crystallize_dist.model.references import top_level_names

DEFS = """
from crystallize_dist import DataSource, Experiment, Pipeline, PipelineStep

class Zero(DataSource):
    def fetch(self, ctx):
        return 0.0

class Keep(PipelineStep):
    def __call__(self, data, ctx):
        return data, {"x": data}

experiment = Experiment(Zero(), Pipeline([Keep()]), replicates=2)
"""

PROBE = """
from crystallize_dist.model.references import find_ref
print(find_ref({name}))
"""


def _ref_printed(folder: Path, driver: str) -> str:
    (folder / "driver.py").write_text(driver)
    out = subprocess.run(
        [sys.executable, "driver.py"], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_a_driver_script_hands_workers_the_experiments_own_module(tmp_path: Path) -> None:
    (tmp_path / "defs.py").write_text(DEFS)
    driver = "import defs\ne = defs.experiment\n" + PROBE.format(name="e")
    assert _ref_printed(tmp_path, driver) == "defs:experiment"


def test_a_script_attribute_set_under_the_main_guard_is_not_a_reference(tmp_path: Path) -> None:
    guarded = DEFS.replace("experiment = ", 'if __name__ == "__main__":\n    e = ')
    driver = guarded + "\n    " + PROBE.format(name="e").strip().replace("\n", "\n    ")
    assert _ref_printed(tmp_path, driver) == "None"  # a worker would not find 'e'
    top = DEFS + PROBE.format(name="experiment")
    assert _ref_printed(tmp_path, top) == f"{(tmp_path / 'driver.py').resolve()}:experiment"


def test_top_level_names_are_what_an_import_binds(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        "import os, numpy as np\nfrom x import y as z\na = 1\nb: int = 2\nc, (d, e) = 1, (2, 3)\n"
        "def f():\n    g = 1\nclass K:\n    h = 1\nif True:\n    i = 1\nelse:\n    j = 2\n"
        "try:\n    k = 1\nexcept Exception:\n    l = 1\n"
        'if __name__ == "__main__":\n    q = 1\nelse:\n    r = 1\n'
        'if __name__ != "__main__":\n    s = 1\n'
    )
    assert top_level_names(src) == set("Kabcdefijklrsz") | {"os", "np"}
    assert top_level_names(tmp_path / "missing.py") == set()
