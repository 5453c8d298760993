"""The per-step provenance of a compact record (see ``compact``): one entry per step, with
what the run's template says about the step left out.

The line is ``[input hash of the first step, entry, ...]``; an entry is
``[output hash, {metric: count after}]``, with a third item - a mapping of the step's own
``step``, ``params``, ``step_hash``, ``input_hash``, ``cache_hit``, ``reads``, ``wrote`` or
``metrics`` - only where they differ from the template or the defaults. A hash is ``0``
when the output equals the step's input, 43 characters of url-safe base64 for a sha256 hex
digest, ``"="`` + the text for any other text, or null. A metric's count is how many
values it holds after the step (``[before, after]`` when the count before the step is not
the one the previous steps left); its before and after lists are the first values of the
cell's final list of that metric.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from crystallize_dist.canonical import dumps
from crystallize_dist.distributed.store.compact_fast import (
    CHANGE_KEYS,
    STEP_KEYS,
    hash_text,
    same_start,
)

#: (name, params, step hash, the params' JSON text) of each step of a run's template
TemplateStep = tuple[Any, Any, Any, str]
_NO_STEP: TemplateStep = (None, None, None, "")
_pack_hash = hash_text
_same = same_start


def _unpack_hash(value: Any) -> Any:
    if value is None:
        return None
    if value[:1] == "=":
        return value[1:]
    return base64.urlsafe_b64decode(value + "=").hex()


def pack_steps(steps: Any, final: dict[str, Any], template: Sequence[TemplateStep]) -> str | None:
    """The compact line of a record's steps, or None when it cannot say them exactly."""
    if type(steps) is not list:
        return None
    if not steps:
        return "[]"
    first = steps[0]
    if type(first) is not dict:
        return None
    previous = first.get("input_hash")
    out: list[Any] = [_pack_hash(previous)]
    counts: dict[str, int] = {}
    for i, st in enumerate(steps):
        entry = _pack_step(st, i, previous, final, counts, template)
        if entry is None:
            return None
        out.append(entry)
        previous = st["output_hash"]
    return dumps(out)


def _pack_step(
    st: Any,
    i: int,
    previous: Any,
    final: dict[str, Any],
    counts: dict[str, int],
    template: Sequence[TemplateStep],
) -> list[Any] | None:
    if type(st) is not dict or tuple(st) != STEP_KEYS:
        return None
    changes = st["ctx_changes"]
    if type(changes) is not dict or tuple(changes) != CHANGE_KEYS:
        return None
    name, _, step_hash, params_text = template[i] if i < len(template) else _NO_STEP
    extra: dict[str, Any] = {}
    if st["step"] != name or type(st["step"]) is not str:
        extra["step"] = st["step"]
    params = st["params"]
    if not (params_text == "{}" and params == {}) and dumps(params) != params_text:
        extra["params"] = params
    if st["step_hash"] != step_hash or type(st["step_hash"]) is not str:
        extra["step_hash"] = st["step_hash"]
    if st["input_hash"] != previous:
        extra["input_hash"] = st["input_hash"]
    if st["cache_hit"] is not False:
        extra["cache_hit"] = st["cache_hit"]
    if changes["reads"]:
        extra["reads"] = changes["reads"]
    if changes["wrote"]:
        extra["wrote"] = changes["wrote"]
    out = st["output_hash"]
    if out is not None and type(out) is not str:
        return None
    entry: list[Any] = [0 if out is not None and out == st["input_hash"] else _pack_hash(out)]
    changed = changes["metrics"]
    moved = _pack_counts(changed, final, counts)
    if moved is None:  # stored as it is; the counts go on from its after lists
        extra["metrics"] = changed
        moved = {}
        for key, change in changed.items():
            counts[key] = len(change["after"])
    entry.append(moved)
    if extra:
        entry.append(extra)
    return entry


def _pack_counts(
    changed: Any, final: dict[str, Any], counts: dict[str, int]
) -> dict[str, Any] | None:
    """A step's metric changes as value counts, when each before and after is the start of
    the cell's final list of that metric; else None (they are stored as they are)."""
    if type(changed) is not dict:
        return None
    out: dict[str, Any] = {}
    for key, change in changed.items():
        values = final.get(key)
        if type(change) is not dict or list(change) != ["before", "after"] or values is None:
            return None
        before, after = change["before"], change["after"]
        if type(before) not in (tuple, list) or type(after) not in (tuple, list):
            return None
        if not (_same(before, values) and _same(after, values)):
            return None
        nb, na = len(before), len(after)
        out[key] = na if nb == counts.get(key, 0) else [nb, na]
    for key, change in changed.items():
        counts[key] = len(change["after"])
    return out


def expand_steps(
    packed: list[Any], final: dict[str, Any], template: Sequence[TemplateStep]
) -> list[Any]:
    """The steps of a record from their compact line (stored as they are when its first
    item is a mapping)."""
    if not packed or type(packed[0]) is dict:  # no steps, or stored as they are
        return packed
    previous = _unpack_hash(packed[0])
    counts: dict[str, int] = {}
    out = []
    for i, entry in enumerate(packed[1:]):
        extra = entry[2] if len(entry) > 2 else {}
        name, params, step_hash, _ = template[i] if i < len(template) else _NO_STEP
        inp = extra.get("input_hash", previous)
        out_hash = inp if entry[0] == 0 else _unpack_hash(entry[0])
        if "metrics" in extra:
            moved = extra["metrics"]
        else:
            moved = {}
            for key, n in entry[1].items():
                nb, na = (counts.get(key, 0), n) if type(n) is int else n
                counts[key] = na
                values = final[key]
                moved[key] = {"before": values[:nb], "after": values[:na]}
        if "metrics" in extra:
            for key, change in moved.items():
                counts[key] = len(change["after"])
        out.append(
            {
                "step": extra.get("step", name),
                "params": extra["params"] if "params" in extra else _copy(params),
                "step_hash": extra.get("step_hash", step_hash),
                "input_hash": inp,
                "output_hash": out_hash,
                "cache_hit": extra.get("cache_hit", False),
                "ctx_changes": {
                    "reads": extra.get("reads", {}),
                    "wrote": extra.get("wrote", {}),
                    "metrics": moved,
                },
            }
        )
        previous = out_hash
    return out


def _copy(params: Any) -> Any:
    return dict(params) if type(params) is dict else params
