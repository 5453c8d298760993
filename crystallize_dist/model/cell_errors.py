"""A failed cell's error in a Result: its JSON form and the exception rebuilt from it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crystallize_dist.errors import CellError, StepCellError, cell_error_class


def error_to_dict(err: BaseException) -> dict[str, Any]:
    """The JSON form of an error stored in a Result."""
    if isinstance(err, CellError):
        out: dict[str, Any] = {
            "type": err.error_type,
            "message": err.message,
            "traceback": err.traceback_str,
            "condition": err.condition,
            "replicate": err.replicate,
            "step": err.step,
        }
        original = getattr(err, "original_exception", None)
        if isinstance(original, CellError):
            out["original"] = {"type": original.error_type, "message": original.message}
        return out
    return {
        "type": type(err).__name__,
        "message": str(err),
        "traceback": getattr(err, "traceback_str", ""),
    }


def error_from_dict(data: Mapping[str, Any]) -> CellError:
    """Rebuild the exception object of a failed cell from its JSON form."""
    common = {
        "error_type": data.get("type", "Exception"),
        "traceback_str": data.get("traceback", "") or "",
        "condition": data.get("condition"),
        "replicate": data.get("replicate"),
        "step": data.get("step"),
    }
    original = data.get("original")
    if original is not None:
        step_error = cell_error_class(StepCellError, str(common["error_type"]))
        return step_error(
            data.get("message", ""),
            original_type=original.get("type", ""),
            original_message=original.get("message", ""),
            **common,
        )
    return cell_error_class(CellError, str(common["error_type"]))(data.get("message", ""), **common)
