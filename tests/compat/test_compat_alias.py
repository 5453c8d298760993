"""Files written for Crystallize run unchanged: ``crystallize`` is an alias of
``crystallize_dist`` in the CLI (``submit --local`` here; Celery workers in
tests/integration/test_crystallize_files.py) and in scripts that import
``crystallize_dist.compat``; when crystallize-ml is installed nothing is shadowed and the
CLI says how to switch the file's imports.

Each case runs in a new interpreter: the alias is process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from crystallize_files import write_pair

ROOT = Path(__file__).resolve().parents[2]


def _python(*args: str, cwd: Path, site: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in a new interpreter (``site`` first on its path when given)."""
    env = dict(os.environ)
    env.pop("PYTHONHASHSEED", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (site, str(ROOT)) if p)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


def _submit_local(
    ref: Path, cwd: Path, site: str | None = None
) -> subprocess.CompletedProcess[str]:
    return _python(
        "-m",
        "crystallize_dist",
        "submit",
        str(ref),
        "--local",
        "--workers",
        "2",
        "--format",
        "json",
        "--no-progress",
        cwd=cwd,
        site=site,
    )


def test_submit_local_runs_a_crystallize_file_unchanged(tmp_path: Path) -> None:
    original, switched = write_pair(tmp_path / "exp")
    ran = _submit_local(original, tmp_path)
    assert ran.returncode == 0, ran.stderr
    same = _submit_local(switched, tmp_path)
    assert same.returncode == 0, same.stderr
    digest = json.loads(ran.stdout)["digest"]
    assert digest == json.loads(same.stdout)["digest"]
    # the serial in-process run of the file gives the same bytes
    assert _python(str(switched), cwd=tmp_path).stdout.strip() == digest


def test_scripts_alias_crystallize_through_crystallize_dist_compat(tmp_path: Path) -> None:
    original, switched = write_pair(tmp_path / "exp")
    expected = _python(str(switched), cwd=tmp_path).stdout.strip()
    assert len(expected) == 64
    as_module = _python("-m", "crystallize_dist.compat", str(original), cwd=tmp_path)
    assert as_module.returncode == 0 and as_module.stdout.strip() == expected, as_module.stderr
    importing = tmp_path / "exp" / "importing.py"
    importing.write_text("import crystallize_dist.compat  # noqa: F401\n" + original.read_text())
    assert _python(str(importing), cwd=tmp_path).stdout.strip() == expected
    both = _python("-m", "crystallize_dist.compat", str(importing), cwd=tmp_path)
    assert both.stdout.strip() == expected, both.stderr
    usage = _python("-m", "crystallize_dist.compat", cwd=tmp_path)
    assert usage.returncode == 2 and "usage: python -m crystallize_dist.compat" in usage.stdout
    without = _python(str(original), cwd=tmp_path)  # no alias, no crystallize-ml: fails
    assert without.returncode != 0 and "No module named 'crystallize'" in without.stderr
    # importing crystallize_dist itself aliases nothing: only compat, the CLI or a loader do
    plain = _python("-c", "import crystallize_dist\nimport crystallize", cwd=tmp_path)
    assert plain.returncode != 0 and "No module named 'crystallize'" in plain.stderr


def test_only_crystallizes_subpackages_are_aliased(tmp_path: Path) -> None:
    code = (
        "import crystallize_dist.compat as c\n"
        "import crystallize, crystallize_dist\n"
        "from crystallize.plugins.plugins import SeedPlugin\n"
        "import crystallize_dist.plugins.plugins as real\n"
        "assert crystallize is crystallize_dist and SeedPlugin is real.SeedPlugin\n"
        "assert real.__spec__.name == 'crystallize_dist.plugins.plugins'\n"
        "for name in ('crystallize.cli', 'crystallize.engine', 'crystallize.compat'):\n"
        "    try:\n"
        "        __import__(name)\n"
        "    except ModuleNotFoundError:\n"
        "        pass\n"
        "    else:\n"
        "        raise AssertionError(name)\n"
        "c.uninstall()\n"
        "import importlib.util\n"
        "assert importlib.util.find_spec('crystallize') is None and not c.installed()\n"
        "print(c.install(), c.install())\n"
    )
    done = _python("-c", code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["aliased", "aliased"]


FAKE = '''"""A stand-in for crystallize-ml, installed."""


class Experiment:
    pass
'''


def test_with_crystallize_ml_installed_nothing_is_shadowed(tmp_path: Path) -> None:
    fake = tmp_path / "site" / "crystallize"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(FAKE)
    site = str(tmp_path / "site")
    check = _python(
        "-c",
        "import crystallize_dist.compat as c, crystallize\n"
        "print(c.install(), c.installed(), crystallize.__file__)",
        cwd=tmp_path,
        site=site,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.split() == [
        "crystallize-ml",
        "installed",
        "False",
        str(fake / "__init__.py"),
    ]
    script = tmp_path / "uses_it.py"
    script.write_text("from crystallize import Experiment\n\nexperiment = Experiment()\n")
    ran = _submit_local(script, tmp_path, site=site)
    assert ran.returncode == 1
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    assert "is a crystallize-ml Experiment" in lines[0]
    assert "change the file's imports from `crystallize` to `crystallize_dist`" in lines[0]
    warned = _python("-m", "crystallize_dist.compat", str(script), cwd=tmp_path, site=site)
    assert warned.returncode == 0 and "crystallize-ml is installed" in warned.stderr
