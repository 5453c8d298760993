"""A cell record: what one cell's run leaves, in JSON types. A record is a plain dict::

    {"condition": str, "replicate": int, "seed": int,
     "status": "ok" | "error",
     "metrics": {name: [values...]},          # JSON types only; {} when status is error
     "error": None | {"type", "message", "traceback", "step"?, "original"?: {"type", "message"}},
     "steps": [{"step", "params", "step_hash", "input_hash", "output_hash", "cache_hit",
                "ctx_changes": {"reads", "wrote", "metrics"}}],
     "seeded": ["random", "numpy", ...],      # libraries seed functions seeded
     "artifacts": [{"name", "step", "path"}],
     "timing": {"started": unix seconds, "duration": seconds},
     "warnings": [str, ...]}                  # replicate 0 only, when it has any

Executors add ``worker`` (host, pid, versions) and the store adds ``attempts``.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from typing import Any

from crystallize_dist.canonical import NotJSONable, to_jsonable
from crystallize_dist.errors import MetricValueError, PipelineExecutionError

STATUS_OK = "ok"
STATUS_ERROR = "error"
#: the keys of a record as the cell path makes it, in its order (executors and stores may
#: add more)
CELL_RECORD_KEYS = (
    "condition",
    "replicate",
    "seed",
    "status",
    "metrics",
    "error",
    "seeded",
    "steps",
    "artifacts",
    "timing",
    "worker",
)


def describe_error(exc: BaseException) -> dict[str, Any]:
    """The JSON form of an exception raised inside a cell."""
    out: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }
    if isinstance(exc, PipelineExecutionError):
        out["step"] = exc.step_name
        orig = exc.original_exception
        out["original"] = {"type": type(orig).__name__, "message": str(orig)}
    return out


def convert_metrics(metrics: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Metric values as JSON types; a value with no JSON form raises MetricValueError.

    ``metrics`` is a finished cell's own ``ctx.metrics`` store: when every value is JSON as
    it is (floats, strings - the common case) it is taken over as it is, not copied.
    """
    for values in metrics.values():
        for v in values:
            kind = type(v)
            if kind not in _PLAIN_METRIC and (kind is not int or v.bit_length() > _MAX_INT_BITS):
                return _converted(metrics)
    return metrics


def _converted(metrics: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for key, values in metrics.items():
        try:
            out[key] = [to_jsonable(v, path=f"metric '{key}'") for v in values]
        except NotJSONable as exc:
            raise MetricValueError(
                f"metric '{key}' has a value of type {exc.value_type}, which is not "
                "JSON-serialisable; record numbers, strings, lists or dicts"
            ) from None
        for v in out[key]:
            if type(v) is int and v.bit_length() > _MAX_INT_BITS:
                raise MetricValueError(
                    f"metric '{key}' is an integer of {v.bit_length()} bits, too long to "
                    "write as JSON text (Python's limit is 4300 digits); record a float or str"
                )
    return out


#: metric values that are JSON as they are (and ints short enough to write as text)
_PLAIN_METRIC = frozenset({float, str, bool, type(None)})
#: ints longer than this cannot be turned into text by a default interpreter (4300 digits).
_MAX_INT_BITS = 14_000


def portable_steps(steps: list[dict[str, Any]]) -> list[Any]:
    """A cell's step provenance in plain JSON types (safe to pickle or send)."""
    plain: list[Any] = to_jsonable(steps, strict=False)
    return plain
