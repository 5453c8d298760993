"""What the cells of a run's first replicate (replicate 0 of every condition) check.

- **Treatment parameters that nothing read.** A key a treatment adds to the context that no
  datasource, step or plugin of its cell asks for is most likely misspelt (``ofset`` for
  ``offset``): the treatment then runs exactly as the baseline. Each such key is one
  warning line naming the treatment, the key and the nearest key that was asked for; with
  ``strict_params`` it is a ValidationError that fails the cell.
- **Draws from the global generators.** The state of ``random`` and ``numpy.random`` is
  compared before the datasource runs and after the last step: when it moved, the cell drew
  from them, and a SeedPlugin without a ``seed_fn`` says that randomness may not be
  reproducible (see ``plugins.unseeded_warning``).

Only these cells pay for the checks: a ``CheckedContext`` notes every key asked for.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from crystallize_dist.constants import CONDITION_KEY, REPLICATE_KEY, SEED_USED_KEY, STEP_NAME_KEY
from crystallize_dist.errors import ValidationError
from crystallize_dist.model.context import FrozenContext
from crystallize_dist.model.plugins import ExperimentLike, unseeded_warning
from crystallize_dist.model.seeding import drawn_from, generator_state

#: the replicate whose cells are checked
CHECKED_REPLICATE = 0
#: keys the run itself puts in every cell's context: never suggested as the nearest key
_RUN_KEYS = frozenset({CONDITION_KEY, REPLICATE_KEY, SEED_USED_KEY, STEP_NAME_KEY})


class CheckedContext(FrozenContext):
    """The context of a first-replicate cell: a FrozenContext that notes every key asked
    for (present or not, by ``ctx[key]``, ``ctx.get``, ``as_dict`` or a step parameter
    injected from the context), the keys the cell's treatment added, and the global
    generators' state when the datasource starts."""

    def __init__(self, initial: Mapping[str, Any] | None = None, logger: Any = None) -> None:
        super().__init__(initial, logger)
        self.requested: set[str] = set()
        self.treatment_keys: list[str] = []
        self.before: tuple[Any, ...] | None = None

    def __getitem__(self, key: str) -> Any:
        self.requested.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.requested.add(key)
        return super().get(key, default)

    def as_dict(self) -> Mapping[str, Any]:
        self.requested.update(self._data)
        return super().as_dict()

    def note_asked(self, key: str) -> None:
        self.requested.add(key)

    def treated(self, keys_before: frozenset[str]) -> None:
        """The treatment was applied (the keys were ``keys_before``): note what it added;
        only what is asked for from here on counts as read."""
        self.treatment_keys = [k for k in self._data if k not in keys_before]
        self.requested = set()

    def keys(self) -> frozenset[str]:
        """The keys the context holds now."""
        return frozenset(self._data)

    def watch(self) -> None:
        """The datasource is about to run: note the global generators' state."""
        self.before = generator_state()

    def findings(self, experiment: ExperimentLike, condition: str, *, strict: bool) -> list[str]:
        """The warning lines of this cell (see the module docstring); with ``strict`` an
        unread treatment parameter raises ValidationError instead."""
        lines = [unread_line(condition, key, self.requested) for key in self.unread()]
        if lines and strict:
            raise ValidationError(f"{lines[0]} (strict_params is on)")
        if self.before is not None:
            drew = drawn_from(self.before, generator_state())
            note = unseeded_warning(experiment, condition, drew) if drew else None
            if note:
                lines.append(note)
        return lines

    def unread(self) -> list[str]:
        """The keys the treatment added that nothing asked for."""
        return [k for k in self.treatment_keys if k not in self.requested]


def unread_line(treatment: str, key: str, requested: set[str]) -> str:
    """The warning about ``treatment``'s parameter ``key`` that nothing read, with the
    nearest key that was asked for (``requested``)."""
    asked = sorted(k for k in requested if k not in _RUN_KEYS)
    line = (
        f"treatment '{treatment}' sets '{key}', but no step or datasource read it in "
        f"replicate {CHECKED_REPLICATE}"
    )
    near = difflib.get_close_matches(key, asked, n=1, cutoff=0.6)
    if near:
        return f"{line}; did you mean '{near[0]}'?"
    if asked:
        shown = ", ".join(f"'{k}'" for k in asked[:5]) + (" ..." if len(asked) > 5 else "")
        return f"{line}; the keys read were {shown}"
    return f"{line}; no step or datasource read any parameter"
