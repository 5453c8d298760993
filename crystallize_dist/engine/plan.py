"""RunPlan: every cell of a run and its seed, fixed before anything runs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from crystallize_dist.constants import BASELINE_CONDITION
from crystallize_dist.model.seeding import derive_seed


@dataclass(frozen=True)
class Cell:
    """One (condition, replicate) of a run, with the seed the plan gave it."""

    condition: str
    replicate: int
    seed: int

    @property
    def key(self) -> str:
        return f"{self.condition}:{self.replicate}"


@dataclass(frozen=True)
class RunPlan:
    """The grid of a run: conditions in canonical order x replicates, and their seeds.

    ``conditions`` always starts with ``baseline``; ``skip`` names conditions a resumed run
    (``strategy="resume"``) already has and does not run again.
    """

    master_seed: int
    replicates: int
    treatments: tuple[str, ...] = ()
    auto_seed: bool = True
    skip: frozenset[str] = field(default_factory=frozenset)

    @property
    def conditions(self) -> tuple[str, ...]:
        return (BASELINE_CONDITION, *self.treatments)

    def seed(self, replicate: int) -> int:
        """The seed of every cell of ``replicate`` (see ``model/seeding.py``)."""
        return derive_seed(self.master_seed, replicate, self.auto_seed)

    @property
    def seeds(self) -> list[int]:
        """The seed table: the seed of each replicate, in order (a new list each time)."""
        return list(self._seed_table)

    @cached_property
    def _seed_table(self) -> tuple[int, ...]:
        master, auto = self.master_seed, self.auto_seed
        return tuple(derive_seed(master, r, auto) for r in range(self.replicates))

    @cached_property
    def runs(self) -> tuple[str, ...]:
        """The conditions this plan runs, in plan order (``conditions`` minus ``skip``)."""
        return tuple(c for c in self.conditions if c not in self.skip)

    def cells_of(self, replicate: int) -> list[Cell]:
        """The cells of one replicate, baseline first, skipping resumed conditions."""
        seed = self.seed(replicate)
        return [Cell(c, replicate, seed) for c in self.runs]

    def cells(self) -> Iterator[Cell]:
        """Every cell in canonical order: replicate-major, conditions in plan order."""
        for r in range(self.replicates):
            yield from self.cells_of(r)

    @property
    def n_cells(self) -> int:
        return self.replicates * len(self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "master_seed": self.master_seed,
            "replicates": self.replicates,
            "treatments": list(self.treatments),
            "auto_seed": self.auto_seed,
            "skip": sorted(self.skip),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunPlan:
        return cls(
            master_seed=int(data["master_seed"]),
            replicates=int(data["replicates"]),
            treatments=tuple(data.get("treatments", ())),
            auto_seed=bool(data.get("auto_seed", True)),
            skip=frozenset(data.get("skip", ())),
        )
