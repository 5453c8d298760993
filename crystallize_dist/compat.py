"""Run files written for Crystallize 0.27 unchanged: ``crystallize`` as an alias of
``crystallize_dist``.

``install()`` puts a ``sys.meta_path`` finder in place that answers ``import crystallize``
and ``import crystallize.X.Y`` with the module objects of ``crystallize_dist`` and
``crystallize_dist.X.Y`` (the same objects: nothing is copied, and classes keep their
``crystallize_dist`` names, so they pickle the same either way), for Crystallize's
subpackages (``datasources``, ``experiments``, ``pipelines``, ``plugins``, ``utils``); any
other ``crystallize.X`` stays a ModuleNotFoundError.

When crystallize-ml itself is installed (a ``crystallize`` package is importable without the
alias), ``install()`` shadows nothing and says so; such a file then builds crystallize-ml
objects, and crystallize-dist asks for its imports to be switched to ``crystallize_dist``.

The ``crystallize-dist`` command installs the alias when it starts, so ``submit`` runs such
files, ``--local`` and on Celery workers. Scripts install it by importing this module before
they import ``crystallize``, or run as ``python -m crystallize_dist.compat script.py [args]``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import runpy
import sys
from types import ModuleType

SOURCE = "crystallize"
TARGET = "crystallize_dist"
#: what ``install`` found: the alias is in place, or crystallize-ml is installed
#: Crystallize's subpackages (crystallize_dist's own rooms are not reachable as crystallize.X)
ALIASED_PACKAGES = frozenset({"datasources", "experiments", "pipelines", "plugins", "utils"})
ALIASED = "aliased"
UPSTREAM = "crystallize-ml installed"


class _Loader(importlib.abc.Loader):
    """Hands out the crystallize_dist module itself (imported on first use)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self.spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # the import system pointed the module's __spec__ at the alias: give it back its own
        if self.spec is not None:
            module.__spec__ = self.spec


class CrystallizeAlias(importlib.abc.MetaPathFinder):
    """Finds ``crystallize`` and ``crystallize.*`` as their crystallize_dist modules."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != SOURCE and not fullname.startswith(SOURCE + "."):
            return None
        real = TARGET + fullname[len(SOURCE) :]
        found = None
        if fullname == SOURCE or fullname.split(".")[1] in ALIASED_PACKAGES:
            try:
                found = importlib.util.find_spec(real)
            except (ImportError, ValueError):
                found = None
        if found is None:
            # ``crystallize`` is crystallize_dist's own folder: without this, the path finder
            # would load crystallize_dist's other modules a second time under this name
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        package = found.submodule_search_locations is not None
        return importlib.util.spec_from_loader(fullname, _Loader(real), is_package=package)


def installed() -> bool:
    """True when the alias is in place."""
    return any(type(f).__name__ == CrystallizeAlias.__name__ for f in sys.meta_path)


def upstream_installed() -> bool:
    """True when a real ``crystallize`` (crystallize-ml) is importable or imported."""
    loaded = sys.modules.get(SOURCE)
    if loaded is not None:
        return getattr(loaded, "__name__", SOURCE) != TARGET
    if installed():
        return False
    try:
        return importlib.util.find_spec(SOURCE) is not None
    except (ImportError, ValueError):
        return False


def install() -> str:
    """Put the alias in place (once) unless crystallize-ml is installed; returns ALIASED or
    UPSTREAM."""
    if installed():
        return ALIASED
    if upstream_installed():
        return UPSTREAM
    sys.meta_path.insert(0, CrystallizeAlias())
    return ALIASED


def uninstall() -> None:
    """Take the alias away again (modules already imported through it stay imported)."""
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != CrystallizeAlias.__name__]
    for name in [n for n in sys.modules if n == SOURCE or n.startswith(SOURCE + ".")]:
        if getattr(sys.modules[name], "__name__", "").startswith(TARGET):
            del sys.modules[name]


SWITCH_HINT = (
    "crystallize-ml is installed, so `crystallize` is not aliased to crystallize_dist; "
    "change the file's imports from `crystallize` to `crystallize_dist` (same names), "
    "or uninstall crystallize-ml"
)


def main(argv: list[str] | None = None) -> int:
    """``python -m crystallize_dist.compat script.py [args]``: run a script with the alias."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m crystallize_dist.compat SCRIPT.py [ARGS...]")
        return 0 if args else 2
    if install() == UPSTREAM:
        print(f"warning: {SWITCH_HINT}", file=sys.stderr)
    sys.argv = args
    runpy.run_path(args[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    # run through the module itself (not this ``__main__`` copy), so a script that imports
    # crystallize_dist.compat finds the alias it put in place
    from crystallize_dist.compat import main as _main

    raise SystemExit(_main())
install()
