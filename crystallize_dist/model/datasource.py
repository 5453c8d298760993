"""DataSource: where a cell's input data comes from."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crystallize_dist.model.context import FrozenContext


class DataSource(ABC):
    """Produces a condition's input data; ``fetch`` is called once per cell."""

    @abstractmethod
    def fetch(self, ctx: FrozenContext) -> Any:
        """Return the data the pipeline starts from."""

    @property
    def params(self) -> dict[str, Any]:
        return dict(getattr(self, "_params", {}) or {})
