"""Compact records: what every cell of a run shares is stored once, and every record reads
back as the cell path made it (crystallize_dist/distributed/store/compact.py)."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest

from crystallize_dist import (
    DataSource,
    Experiment,
    FrozenContext,
    Pipeline,
    PipelineStep,
    SeedPlugin,
    Treatment,
)
from crystallize_dist.canonical import dumps
from crystallize_dist.distributed.store.compact import RecordTemplate, expand, pack, template_steps
from crystallize_dist.distributed.store.compact_steps import pack_steps
from crystallize_dist.distributed.store.records import decode_record, encode
from crystallize_dist.engine.cell import execute_cell
from crystallize_dist.engine.runspec import resolve


class Zero(DataSource):
    def fetch(self, ctx: FrozenContext) -> int:
        return 0


class Record(PipelineStep):
    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        ctx.metrics.add("value", data)
        return data


class Draw(PipelineStep):
    """Changes the data, records two metrics, one of them twice, and a numpy value."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        x = float(ctx.rng.normal()) * self.scale + ctx.get("shift", 0.0)
        ctx.metrics.add("x", x)
        ctx.metrics.add("x", np.float64(x / 2))
        return x, {"y": int(x > 0)}


class Writes(PipelineStep):
    """Writes to the context, so its step provenance has something the template lacks."""

    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        ctx.add("seen", [data, "text"])
        return data


class Fails(PipelineStep):
    def __call__(self, data: Any, ctx: FrozenContext) -> Any:
        if ctx.get("replicate") == 1:
            raise ValueError("replicate 1 fails")
        return data


EXPERIMENTS = {
    "trivial": lambda: Experiment(Zero(), Pipeline([Record()]), replicates=4),
    "three steps, a treatment": lambda: Experiment(
        Zero(),
        Pipeline([Draw(2.0), Writes(), Draw()]),
        plugins=[SeedPlugin(seed=3)],
        treatments=[Treatment("shifted", {"shift": 1.5})],
        replicates=3,
    ),
    "a failing cell": lambda: Experiment(Zero(), Pipeline([Record(), Fails()]), replicates=3),
}


def _records(experiment: Experiment) -> tuple[list[dict[str, Any]], RecordTemplate]:
    """Records as a worker makes them, and the template of their run's manifest."""
    spec = resolve(experiment, hypotheses=[], strategy="rerun")
    manifest = {
        "created": time.time(),
        "seeds": spec.plan.seeds,
        "record_template": {"steps": template_steps(spec.planned)},
    }
    tpl = RecordTemplate.of(json.loads(json.dumps(manifest)))  # as read back from a store
    records = []
    for cell in spec.plan.cells():
        rec = execute_cell(spec, cell)
        rec["worker"] = {**rec["worker"], "node": f"w1@{rec['worker']['host']}"}
        rec["tries"] = 1
        records.append(rec)
    return records, tpl


def _stored(rec: dict[str, Any]) -> dict[str, Any]:
    """A record as its full form reads back (JSON types)."""
    out: dict[str, Any] = json.loads(dumps(rec))
    return out


def _same_timing(back: dict[str, Any], rec: dict[str, Any]) -> None:
    """Timings come back to the microsecond; the rest of ``back`` is left to compare."""
    for key in ("started", "duration"):
        assert abs(back["timing"][key] - rec["timing"][key]) <= 1e-6
    back["timing"] = rec["timing"]


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_a_compact_record_reads_back_as_the_full_one(name: str) -> None:
    records, tpl = _records(EXPERIMENTS[name]())
    for rec in records:
        text = encode(rec, tpl).text
        key = f"{rec['condition']}:{rec['replicate']}"
        back = decode_record(text, key, key=key, template=tpl)
        _same_timing(back, rec)
        assert back == _stored(rec)
        assert list(back) == list(rec)  # the keys in the cell path's order
        assert len(text) < len(encode(rec).text) - 150, text  # the full form


def test_a_trivial_record_is_a_tenth_of_its_full_form() -> None:
    records, tpl = _records(EXPERIMENTS["trivial"]())
    text = encode(records[1], tpl).text
    core, steps = (json.loads(line) for line in text.split("\n"))
    assert set(core) == {"m", "t", "w"}  # seed, status, steps' names and hashes: the run's
    assert len(text) < 130 < 600 < len(encode(records[1]).text)
    assert core["m"] == {"value": [0]} and core["w"][1] == records[1]["worker"]["node"]
    assert steps[1] == [0, {"value": 1}]  # output = input, one value recorded


def test_the_quick_path_writes_the_general_text() -> None:
    """``pack`` writes common records straight from strings; the text is the one the
    general path makes from dictionaries."""
    from crystallize_dist.distributed.store import compact

    for make in EXPERIMENTS.values():
        records, tpl = _records(make())
        for rec in records:
            general = compact._pack(rec, tpl)
            assert pack(rec, tpl) == general


def test_what_the_template_does_not_say_is_stored_with_the_record() -> None:
    records, tpl = _records(EXPERIMENTS["three steps, a treatment"]())
    rec = records[0]
    rec["seed"] = 12345  # not the run's seed for its replicate
    rec["seeded"] = ["random"]
    rec["tries"] = 2
    rec["drift"] = {"numpy": ["1.0", "2.0"]}
    rec["steps"][1]["params"] = {"changed": True}
    rec["steps"][0]["cache_hit"] = True
    text = pack(rec, tpl)
    assert text is not None
    core = json.loads(text.partition("\n")[0])
    assert (core["d"], core["z"], core["r"]) == (12345, ["random"], 2)
    assert core["x"] == {"drift": rec["drift"]}
    back = expand(core, rec["condition"], rec["replicate"], json.loads(text.split("\n")[1]), tpl)
    assert back["steps"] == _stored(rec)["steps"]


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.update(worker={"host": "elsewhere", "pid": 1, "node": "w1@vm"}),
        lambda r: r.update(timing={"started": "yesterday", "duration": 1.0}),
        lambda r: r["worker"].update(gpu=0),
        lambda r: r.pop("worker"),
    ],
)
def test_a_record_the_compact_form_cannot_say_is_stored_in_full(change: Any) -> None:
    records, tpl = _records(EXPERIMENTS["trivial"]())
    rec = records[0]
    change(rec)
    assert pack(rec, tpl) is None
    text = encode(rec, tpl).text
    assert json.loads(text.partition("\n")[0])["condition"] == "baseline"  # the full form
    back = decode_record(text, "cell", key="baseline:0", template=tpl)
    assert back == json.loads(dumps({k: v for k, v in rec.items() if k != "steps"})) | {
        "steps": json.loads(dumps(rec["steps"]))
    }


def test_metric_changes_that_are_not_the_start_of_the_final_list_are_kept() -> None:
    records, tpl = _records(EXPERIMENTS["three steps, a treatment"]())
    rec = records[0]
    rec["steps"][0]["ctx_changes"]["metrics"]["x"]["after"] = (99.0,)  # rewritten later
    line = pack_steps(rec["steps"], rec["metrics"], tpl.steps)
    assert line is not None and '"metrics":{"x"' in line
    text = pack(rec, tpl)
    assert text is not None
    core, steps = text.split("\n")
    back = expand(json.loads(core), rec["condition"], rec["replicate"], json.loads(steps), tpl)
    assert back["steps"] == _stored(rec)["steps"]
