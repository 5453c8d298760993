"""The compact text of the common record, made with few Python operations.

Most records of a run look alike: a cell that went well, whose seed is the run's, whose
steps are the template's with nothing read, written or cached. ``pack_common`` writes the
text of such a record straight from strings - the same text ``compact.pack`` makes from its
dictionaries, in a third of the time - and gives None for any other record, which
``compact.pack`` then writes the general way.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

from crystallize_dist.canonical import dumps
from crystallize_dist.engine.records import CELL_RECORD_KEYS

#: the keys of a record from a worker, in the order the cell path and the runner make them
RECORD_KEYS = (*CELL_RECORD_KEYS, "tries")
#: the libraries the default seed function seeds (a record that says so leaves it out)
DEFAULT_SEEDED = ["random", "numpy"]
STEP_KEYS = (
    "step",
    "params",
    "step_hash",
    "input_hash",
    "output_hash",
    "cache_hit",
    "ctx_changes",
)
CHANGE_KEYS = ("reads", "wrote", "metrics")
_TIMING = ("started", "duration")
_WORKER = ("host", "pid", "node")
_CHANGE = ("before", "after")
_HEX = frozenset("0123456789abcdef")
#: JSON text of hashes and node names seen lately (cells of a run share many of them)
_seen: dict[Any, str] = {}
_SEEN_MAX = 4096


def hash_text(value: Any) -> Any:
    """A hash as the compact form writes it: 43 characters of url-safe base64 for a sha256
    hex digest, ``"="`` + the text for any other text, None for None."""
    if value is None:
        return None
    if type(value) is str and len(value) == 64 and _HEX.issuperset(value):
        return base64.urlsafe_b64encode(bytes.fromhex(value))[:43].decode()
    return "=" + value


def _json_hash(value: Any) -> str:
    text = _seen.get(value)
    if text is None:
        if len(_seen) >= _SEEN_MAX:
            _seen.clear()
        text = _seen[value] = json.dumps(hash_text(value), ensure_ascii=False)
    return text


def _json_node(node: str) -> str:
    key = ("node", node)
    text = _seen.get(key)
    if text is None:
        text = _seen[key] = json.dumps(node, ensure_ascii=False)
    return text


def same_start(values: Sequence[Any], final: list[Any]) -> bool:
    """Whether ``values`` are the first ``len(values)`` of ``final``, as stored text."""
    n = len(values)
    if n > len(final):
        return False
    for i in range(n):
        if values[i] is not final[i]:
            return dumps(list(values)) == dumps(final[:n])
    return True


def pack_common(
    record: Mapping[str, Any],
    created: float,
    seed: Any,
    template: Any,
    numbers: Mapping[str, int],
) -> str | None:
    """The compact text of a common record (see the module docstring), or None. ``seed``
    is the run's seed of the record's replicate, ``template`` its template steps,
    ``numbers`` the nodes' numbers in the run."""
    if tuple(record) != RECORD_KEYS or record["status"] != "ok" or record["error"] is not None:
        return None
    tries, rec_seed = record["tries"], record["seed"]
    if type(tries) is not int or tries != 1 or type(rec_seed) is not int or rec_seed != seed:
        return None
    if record["artifacts"] or record["seeded"] != DEFAULT_SEEDED:
        return None
    metrics, timing, worker = record["metrics"], record["timing"], record["worker"]
    if type(metrics) is not dict or type(timing) is not dict or type(worker) is not dict:
        return None
    if tuple(timing) != _TIMING or tuple(worker) != _WORKER:
        return None
    started, duration, node, pid = (
        timing["started"],
        timing["duration"],
        worker["node"],
        worker["pid"],
    )
    if type(started) is not float or type(duration) not in (float, int) or type(pid) is not int:
        return None
    if type(node) is not str or worker["host"] != node.rpartition("@")[2]:
        return None
    steps = _steps(record["steps"], metrics, template)
    if steps is None:
        return None
    head = '{"m":' + _json_metrics(metrics) + "," if metrics else "{"
    number = numbers.get(node)
    who = _json_node(node) if number is None else number
    return (
        f'{head}"t":[{round((started - created) * 1e6)},{round(duration * 1e6)}],'
        f'"w":[{pid},{who}]}}\n{steps}'
    )


def _steps(steps: Any, final: dict[str, Any], template: Sequence[Any]) -> str | None:
    if type(steps) is not list or len(steps) > len(template):
        return None
    if not steps:
        return "[]"
    if type(steps[0]) is not dict:
        return None
    previous = steps[0].get("input_hash")
    parts = ["[", _json_hash(previous)]
    counts: dict[str, int] = {}
    for i, st in enumerate(steps):
        if type(st) is not dict or tuple(st) != STEP_KEYS:
            return None
        name, _, step_hash, params_text = template[i]
        if st["step"] != name or st["step_hash"] != step_hash or type(name) is not str:
            return None
        params = st["params"]
        empty = params_text == "{}" and type(params) is dict and not params
        if not empty and dumps(params) != params_text:
            return None
        if st["input_hash"] != previous or st["cache_hit"] is not False:
            return None
        changes = st["ctx_changes"]
        if type(changes) is not dict or tuple(changes) != CHANGE_KEYS:
            return None
        if changes["reads"] or changes["wrote"]:
            return None
        moved = _counts(changes["metrics"], final, counts)
        out = st["output_hash"]
        if moved is None or (out is not None and type(out) is not str):
            return None
        same = out is not None and out == previous
        parts += [",[", "0" if same else _json_hash(out), ",", moved, "]"]
        previous = out
    parts.append("]")
    return "".join(parts)


def _counts(changed: Any, final: dict[str, Any], counts: dict[str, int]) -> str | None:
    """A step's metric changes as the JSON of their value counts, or None (see
    ``compact_steps``)."""
    if type(changed) is not dict:
        return None
    parts = []
    for key, change in changed.items():
        values = final.get(key)
        if type(change) is not dict or tuple(change) != _CHANGE or type(values) is not list:
            return None
        before, after = change["before"], change["after"]
        if type(before) not in (tuple, list) or type(after) not in (tuple, list):
            return None
        if not (same_start(before, values) and same_start(after, values)):
            return None
        nb, na = len(before), len(after)
        count = na if nb == counts.get(key, 0) else f"[{nb},{na}]"
        counts[key] = na
        parts.append(f"{_json_key(key)}:{count}")
    return "{" + ",".join(parts) + "}"


def _json_key(key: str) -> str:
    text = _seen.get(("key", key))
    if text is None:
        text = _seen[("key", key)] = json.dumps(key, ensure_ascii=False)
    return text


def _json_metrics(metrics: dict[str, Any]) -> str:
    """``dumps(metrics)`` for lists of ints and finite floats, written directly."""
    parts = []
    for key, values in metrics.items():
        if type(key) is not str or type(values) is not list:
            return dumps(metrics)
        texts = []
        for v in values:
            kind = type(v)
            if kind is float and v - v == 0.0:  # finite: repr is its JSON
                texts.append(repr(v))
            elif kind is int:
                texts.append(str(v))
            else:
                return dumps(metrics)
        parts.append(f"{_json_key(key)}:[{','.join(texts)}]")
    return "{" + ",".join(parts) + "}"
