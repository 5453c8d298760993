"""Compact record text: what every cell of a run shares is stored once, in its manifest.

A record as the cell path makes it repeats what is the same for the whole run: its
condition and replicate (the cell's key says them), its seed (the manifest's seed table),
each step's name, parameters and hash (the manifest's ``record_template``), and the values
of a cell that went well (status ``ok``, no error, no artifacts, ``random`` and ``numpy``
seeded, one try). Its compact text leaves those out and writes the rest with short keys::

    {"m": metrics, "t": [started, duration], "w": [pid, node]}
    [input hash, [output hash, {metric: count after}], ...]

- ``t``: when the cell started, in microseconds after the run was created, and how long it
  took, in microseconds (timings are kept to the microsecond);
- ``w``: the pid of the worker process and its node: the node's number in the run (its
  stamp says which number is its) or, for a writer without one, its name; the host is the
  node's ``@host`` part;
- ``s`` status, ``e`` error, ``d`` seed, ``z`` seeded libraries, ``a`` artifacts, ``r``
  tries (null: the record has none): only where they differ from the run's or a good
  cell's; ``x``: the record's other keys (a worker's ``drift``, ...), in their order;
- the second line lists the input hash of the first step, then one entry per step: its
  output hash (``0`` when it equals its input, sha256 hex written as 43 characters of
  url-safe base64, ``"="`` + text for any other text), the number of values each metric
  changed by the step holds after it (``[before, after]`` when the count before is not the
  one the previous steps left), and - only where they differ from the template or the
  defaults - the step's own name, params, hash, cache hit, reads, writes or metric changes.

Every field the compact text leaves out is rebuilt exactly by ``expand``; a record this
format cannot say exactly (a worker stamp of another shape, a timing that is not a pair
of numbers, ...) is stored in the full form, which readers tell apart by its
``condition`` key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from crystallize_dist.canonical import dumps, to_jsonable
from crystallize_dist.distributed.store.compact_fast import DEFAULT_SEEDED, RECORD_KEYS, pack_common
from crystallize_dist.distributed.store.compact_steps import TemplateStep, expand_steps, pack_steps
from crystallize_dist.distributed.store.seed_table import manifest_seeds

_KNOWN = frozenset(RECORD_KEYS)
#: every key but ``tries`` (records of failures outside experiment code have none)
_REQUIRED = RECORD_KEYS[:-1]


@dataclass(frozen=True)
class RecordTemplate:
    """What the records of one run share, read from its manifest: when it was created, its
    seed table and its steps (name, params, step hash)."""

    created: float = 0.0
    seeds: Sequence[int] = ()
    #: (name, params, step hash, the params' JSON text) of each step
    steps: tuple[TemplateStep, ...] = ()
    #: worker node -> its number in the run (a record names its node by number)
    numbers: Mapping[str, int] = field(default_factory=dict)
    #: number -> worker node, from the workers' stamps (each stamp says its number)
    nodes: Mapping[int, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls, manifest: Mapping[str, Any], workers: Mapping[str, Any] | None = None
    ) -> RecordTemplate:
        """The template of the run of ``manifest``, whose workers' (verified) stamps are
        ``workers``."""
        tpl = manifest.get("record_template")
        steps: list[TemplateStep] = []
        if isinstance(tpl, Mapping) and isinstance(tpl.get("steps"), list):
            for item in tpl["steps"]:
                if not (isinstance(item, list) and len(item) == 3):
                    break
                steps.append((item[0], item[1], item[2], dumps(item[1])))
        created: Any = manifest.get("created")
        seeds = manifest_seeds(manifest)
        nodes = {
            info["id"]: node
            for node, info in (workers or {}).items()
            if isinstance(info, Mapping) and type(info.get("id")) is int
        }
        return cls(
            float(created) if type(created) in (int, float) else 0.0,
            seeds,
            tuple(steps),
            {node: number for number, node in nodes.items()},
            nodes,
        )

    def numbered(self, node: str, number: int) -> RecordTemplate:
        """This template, for a worker that knows its node's number."""
        return replace(self, numbers={**self.numbers, node: number})

    def seed(self, replicate: int) -> Any:
        seeds = self.seeds
        return seeds[replicate] if 0 <= replicate < len(seeds) else None


def template_steps(planned: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """A run's ``record_template`` steps from its planned steps (``Pipeline.plan()``):
    ``[name, params, step_hash]`` each, in JSON types."""
    return [[p[1], to_jsonable(p[2], strict=False), p[3]] for p in planned]


# --- packing ----------------------------------------------------------------------------------
def pack(record: Mapping[str, Any], tpl: RecordTemplate) -> str | None:
    """The compact text of ``record`` (see the module docstring), or None when the compact
    form cannot say it exactly (the caller stores the full form)."""
    try:
        replicate = record["replicate"]
        seed = tpl.seed(replicate) if type(replicate) is int else None
        text = pack_common(record, tpl.created, seed, tpl.steps, tpl.numbers)
        if text is not None:
            return text
        if any(k not in record for k in _REQUIRED):
            return None
        return _pack(record, tpl)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
        return None


def _pack(record: Mapping[str, Any], tpl: RecordTemplate) -> str | None:
    core: dict[str, Any] = {}
    status = record["status"]
    if status != "ok":
        core["s"] = status
    metrics = record["metrics"]
    if type(metrics) is not dict:
        return None
    if metrics:
        core["m"] = metrics
    if record["error"] is not None:
        core["e"] = record["error"]
    seed = record["seed"]
    if type(seed) is not int or seed != tpl.seed(record["replicate"]):
        core["d"] = seed
    if record["seeded"] != DEFAULT_SEEDED:
        core["z"] = record["seeded"]
    if record["artifacts"]:
        core["a"] = record["artifacts"]
    timing = _pack_timing(record["timing"], tpl.created)
    worker = _pack_worker(record["worker"], tpl.numbers)
    if timing is None or worker is None:
        return None
    core["t"], core["w"] = timing, worker
    if "tries" not in record:
        core["r"] = None
    elif record["tries"] != 1 or type(record["tries"]) is not int:
        core["r"] = record["tries"]
    extra = {key: record[key] for key in record if key not in _KNOWN}
    if extra:  # keys the cell path does not make (a worker's drift, ...), in their order
        core["x"] = extra
    steps = pack_steps(record["steps"], metrics, tpl.steps)
    if steps is None:
        return None
    return dumps(core) + "\n" + steps


def _pack_timing(timing: Any, created: float) -> list[int] | None:
    if type(timing) is not dict or list(timing) != ["started", "duration"]:
        return None
    started, duration = timing["started"], timing["duration"]
    if type(started) is not float or type(duration) not in (float, int):
        return None
    return [round((started - created) * 1e6), round(duration * 1e6)]


def _pack_worker(worker: Any, numbers: Mapping[str, int]) -> list[Any] | None:
    if type(worker) is not dict or list(worker) != ["host", "pid", "node"]:
        return None
    node, pid = worker["node"], worker["pid"]
    if type(node) is not str or type(pid) is not int or worker["host"] != _host(node):
        return None
    return [pid, numbers.get(node, node)]


def _host(node: str) -> str:
    return node.rpartition("@")[2]


# --- expanding --------------------------------------------------------------------------------
def expand(
    core: dict[str, Any], condition: str, replicate: int, steps: Any, tpl: RecordTemplate
) -> dict[str, Any]:
    """The full record of a compact one (see the module docstring); ``steps`` is its parsed
    second line, or None when the reader does not need the per-step provenance. Raises
    ValueError, TypeError, KeyError, IndexError or AttributeError when the compact text is
    malformed."""
    get = core.get
    metrics = get("m", {})
    started, duration = core["t"]
    pid, node = core["w"]
    if type(node) is int:  # the node's number in the run
        node = tpl.nodes.get(node)
    seed = core["d"] if "d" in core else tpl.seed(replicate)
    if type(metrics) is not dict or type(seed) not in _SEED_TYPES:
        raise TypeError("metrics or seed of the wrong type")
    rec: dict[str, Any] = {
        "condition": condition,
        "replicate": replicate,
        "seed": seed,
        "status": get("s", "ok"),
        "metrics": metrics,
        "error": get("e"),
        "seeded": get("z") if "z" in core else [*DEFAULT_SEEDED],
    }
    if steps is not None:
        rec["steps"] = expand_steps(steps, metrics, tpl.steps)
    rec["artifacts"] = get("a", [])
    rec["timing"] = {"started": tpl.created + started / 1e6, "duration": duration / 1e6}
    rec["worker"] = {"host": None if node is None else _host(node), "pid": pid, "node": node}
    tries = get("r", 1)
    if tries is not None:
        rec["tries"] = tries
    extra = get("x")
    if extra:
        rec.update(extra)
    return rec


_SEED_TYPES = (int, type(None))

__all__ = ["DEFAULT_SEEDED", "RecordTemplate", "expand", "pack", "template_steps"]
