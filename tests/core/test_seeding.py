"""Seeding: the replicate seed formula, paired seeds, seed functions (contract §19.1-4)."""

from __future__ import annotations

import random
import sys
import types
from typing import Any

import numpy as np
import pytest
from fixtures import ConstantSource, RecordSeedStep

from crystallize_dist import (
    Experiment,
    Pipeline,
    SeedPlugin,
    Treatment,
    default_seed_function,
    seed_everything,
)
from crystallize_dist.plugins.plugins import default_seed_function as alias_seed_function


def _experiment(plugins: list[Any], **kwargs: Any) -> Experiment:
    return Experiment(
        datasource=ConstantSource(0),
        pipeline=Pipeline([RecordSeedStep()]),
        plugins=plugins,
        **kwargs,
    )


TREATMENTS = [Treatment("t1", {"a": 1}), Treatment("t2", {"b": 2})]


# --- 1. the formula ------------------------------------------------------------------------
@pytest.mark.parametrize("master", [123, 2**32 - 5, 2**40 + 3, -7])
def test_every_condition_of_replicate_r_gets_the_formula_seed(master: int) -> None:
    exp = _experiment([SeedPlugin(seed=master)], treatments=TREATMENTS)
    result = exp.run(replicates=3)
    expected = [(master + r * 31337) % 2**32 for r in range(3)]
    assert result.metrics.baseline.metrics["seed"] == expected
    for name in ("t1", "t2"):
        assert result.metrics.treatments[name].metrics["seed"] == expected
    assert result.provenance["seeds"]["baseline"] == expected
    assert result.provenance["seeds"]["t1"] == expected


def test_auto_seed_false_reuses_the_master_seed() -> None:
    exp = _experiment([SeedPlugin(seed=77, auto_seed=False)])
    result = exp.run(replicates=3)
    assert result.metrics.baseline.metrics["seed"] == [77, 77, 77]
    assert result.provenance["seeds"]["baseline"] == [77, 77, 77]
    # same seed -> the global generator gives the same draw in every replicate
    draws = result.metrics.baseline.metrics["draw"]
    assert draws[0] == draws[1] == draws[2]


# --- 2. paired seeds, seed_fn once per condition ------------------------------------------
def test_seed_fn_called_once_per_condition_with_the_paired_seed() -> None:
    calls: list[int] = []
    exp = _experiment([SeedPlugin(seed=5, seed_fn=calls.append)], treatments=TREATMENTS)
    result = exp.run(replicates=2)
    s0, s1 = 5, 5 + 31337
    assert calls == [s0, s0, s0, s1, s1, s1]
    assert result.metrics.treatments["t2"].metrics["seed"] == [s0, s1]


def test_seed_fn_replaces_the_default_seeding() -> None:
    random.seed(0)
    exp = _experiment([SeedPlugin(seed=5, seed_fn=lambda s: None)])
    first = exp.run(replicates=1).metrics.baseline.metrics["draw"]
    second = exp.run(replicates=1).metrics.baseline.metrics["draw"]
    assert first != second  # nobody reseeded the global generator


# --- 3. default_seed_function ----------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 42, 2**32 - 1, 2**32 + 7])
def test_default_seed_function_seeds_random_and_numpy(seed: int) -> None:
    default_seed_function(seed)
    got_random, got_numpy = random.random(), np.random.random()
    assert got_random == random.Random(seed).random()
    assert got_numpy == np.random.RandomState(seed % (2**32 - 1)).random_sample()
    assert alias_seed_function is default_seed_function


# --- 4. SeedPlugin() draws its master seed at construction -------------------------------------
def test_unseeded_plugin_draws_at_construction_and_keeps_it() -> None:
    plugin = SeedPlugin()
    assert plugin.seed is None
    exp = _experiment([plugin])
    drawn = plugin.seed
    assert isinstance(drawn, int) and 0 <= drawn < 2**32
    _experiment([plugin])  # a second experiment sharing the plugin keeps the seed
    assert plugin.seed == drawn
    result = exp.run(replicates=2)
    assert result.provenance["master_seed"] == drawn  # recorded, so the run can be replayed
    assert result.metrics.baseline.metrics["seed"] == [drawn, (drawn + 31337) % 2**32]


def test_default_plugin_seeds_differ_between_experiments() -> None:
    seeds = {_experiment([]).get_plugin(SeedPlugin).seed for _ in range(4)}
    assert len(seeds) > 1


def test_default_seed_plugin_replays_with_the_recorded_seed() -> None:
    first = _experiment([]).run(replicates=2)
    replay = _experiment([SeedPlugin(seed=first.provenance["master_seed"])]).run(replicates=2)
    assert replay.metrics == first.metrics
    assert replay.digest == first.digest


# --- seed_everything --------------------------------------------------------------------------
def test_seed_everything_seeds_random_and_numpy_and_reports_it() -> None:
    seeded = seed_everything(11)
    assert seeded == ["random", "numpy"]
    assert random.random() == random.Random(11).random()
    assert np.random.random() == np.random.RandomState(11).random_sample()


def test_seed_everything_is_recorded_in_the_cell_provenance() -> None:
    exp = _experiment([SeedPlugin(seed=3, seed_fn=seed_everything)])
    result = exp.run(replicates=2)
    cells = result.provenance["cells"]
    assert cells["baseline:0"]["seeded"] == ["random", "numpy"]
    assert cells["baseline:1"]["seeded"] == ["random", "numpy"]
    assert cells["baseline:1"]["seed"] == 3 + 31337


def test_default_seed_function_is_recorded_in_the_cell_provenance() -> None:
    result = _experiment([SeedPlugin(seed=3)]).run()
    assert result.provenance["cells"]["baseline:0"]["seeded"] == ["random", "numpy"]


def test_no_seeding_records_nothing() -> None:
    result = _experiment([SeedPlugin(seed=3, seed_fn=lambda s: None)]).run()
    assert result.provenance["cells"]["baseline:0"]["seeded"] == []


class _Recorder:
    """Records calls made on any attribute path (a stand-in for torch / tensorflow)."""

    def __init__(self, log: list[tuple[str, tuple[Any, ...]]], path: str) -> None:
        self._log = log
        self._path = path

    def __getattr__(self, name: str) -> Any:
        child = _Recorder(self._log, f"{self._path}.{name}")
        object.__setattr__(self, name, child)
        return child

    def __call__(self, *args: Any) -> Any:
        self._log.append((self._path, args))
        return False  # torch.cuda.is_available() -> False


def _fake_torch(cuda: bool) -> tuple[types.ModuleType, list[tuple[str, tuple[Any, ...]]]]:
    log: list[tuple[str, tuple[Any, ...]]] = []
    torch = types.ModuleType("torch")
    torch.manual_seed = lambda s: log.append(("manual_seed", (s,)))  # type: ignore[attr-defined]
    torch.use_deterministic_algorithms = lambda on: log.append(  # type: ignore[attr-defined]
        ("use_deterministic_algorithms", (on,))
    )
    torch.cuda = types.SimpleNamespace(  # type: ignore[attr-defined]
        is_available=lambda: cuda,
        manual_seed_all=lambda s: log.append(("cuda.manual_seed_all", (s,))),
    )
    torch.backends = types.SimpleNamespace(  # type: ignore[attr-defined]
        cudnn=types.SimpleNamespace(deterministic=False, benchmark=True)
    )
    return torch, log


def test_seed_everything_seeds_torch_without_determinism(monkeypatch: pytest.MonkeyPatch) -> None:
    torch, log = _fake_torch(cuda=False)
    monkeypatch.setitem(sys.modules, "torch", torch)
    assert seed_everything(9) == ["random", "numpy", "torch"]
    assert log == [("manual_seed", (9,))]
    assert torch.backends.cudnn.deterministic is False
    assert torch.backends.cudnn.benchmark is True


def test_seed_everything_deterministic_sets_torch_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    torch, log = _fake_torch(cuda=True)
    monkeypatch.setitem(sys.modules, "torch", torch)
    seed_everything(9, deterministic=True)
    assert ("manual_seed", (9,)) in log
    assert ("cuda.manual_seed_all", (9,)) in log
    assert ("use_deterministic_algorithms", (True,)) in log
    assert torch.backends.cudnn.deterministic is True
    assert torch.backends.cudnn.benchmark is False


def test_seed_everything_seeds_tensorflow(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[tuple[str, tuple[Any, ...]]] = []
    tf = types.ModuleType("tensorflow")
    tf.random = _Recorder(log, "random")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorflow", tf)
    seed = 2**32 - 1
    assert seed_everything(seed) == ["random", "numpy", "tensorflow"]
    assert log == [("random.set_seed", (seed % 2**31,))]


def test_fake_torch_is_recorded_in_cell_provenance(monkeypatch: pytest.MonkeyPatch) -> None:
    torch, _ = _fake_torch(cuda=False)
    monkeypatch.setitem(sys.modules, "torch", torch)
    result = _experiment([SeedPlugin(seed=1, seed_fn=seed_everything)]).run()
    assert result.provenance["cells"]["baseline:0"]["seeded"] == ["random", "numpy", "torch"]
