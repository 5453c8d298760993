"""The canary's messages on workers: sent at submit after every cell's own message, taken
by ``run_cells`` (a ``canary`` field in the message: the times it was handed back), and
handed back until the cell has a record written by another process - another worker when
one is alive on the queue - or until ``CANARY_HANDBACKS`` is spent (a worker with one
process then runs the cell again itself, and the verdict says so). A process that hands
back a message of a cell it recorded first checks a cell another process recorded
(``_check_another``), and a cell checked in another process is not checked again. A waiting
submitter sends again the canary messages that were lost (``resend_lost``)."""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Iterable, Mapping
from typing import Any

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.distributed.canary import plan_canary, sample_of
from crystallize_dist.distributed.canary_check import check_cell
from crystallize_dist.distributed.publisher import publish
from crystallize_dist.distributed.runner import CellRunner
from crystallize_dist.distributed.signing import verify_entry
from crystallize_dist.distributed.store.records import cell_key
from crystallize_dist.distributed.store.seed_table import manifest_seeds
from crystallize_dist.engine.plan import Cell, RunPlan
from crystallize_dist.errors import SignatureError, TaskMessageError

_log = logging.getLogger("crystallize_dist.worker")


def handbacks_of(kwargs: Mapping[str, Any]) -> int | None:
    """The ``canary`` field of a message (None: an ordinary message)."""
    if "canary" not in kwargs:
        return None
    value = kwargs["canary"]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000:
        raise TaskMessageError(f"task message: canary must be an int in 0..10000, got {value!r}")
    return value


def cells_of(manifest: Mapping[str, Any], keys: Iterable[str]) -> list[Cell]:
    """The cells of ``keys`` with their seeds from the manifest's seed table."""
    seeds = manifest_seeds(manifest)
    out = []
    for key in keys:
        cond, _, rep = key.rpartition(":")
        out.append(Cell(cond, int(rep), int(seeds[int(rep)])))
    return out


def send(settings: Settings, run_id: str, cells: list[Cell], handbacks: int = 0) -> int:
    """One canary message per cell, to the end of the queue of ``settings``."""
    if not cells:
        return 0
    return publish(
        settings,
        run_id,
        [[c] for c in cells],
        kwargs={"canary": handbacks},
        suffix=C.CANARY_TASK_SUFFIX,
    )


def with_canary(plan: RunPlan, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """More options of a new run's manifest (a name, tags): ``canary``, a fraction, becomes
    the run's canary sample (``plan_canary``)."""
    out = dict(options or {})
    if out.get("canary") is not None:
        out["canary"] = plan_canary(plan, out["canary"])
    return out


def send_sample(settings: Settings, manifest: Mapping[str, Any]) -> int:
    """The canary messages of a new run, one per sampled cell (none without a sample)."""
    return send(settings, str(manifest["run_id"]), cells_of(manifest, sample_of(manifest)))


def _others_alive(settings: Settings, node: str) -> bool:
    """Whether a live worker other than ``node`` listens on this queue."""
    import redis

    from crystallize_dist.distributed.reclaim import live_nodes

    client = redis.Redis.from_url(settings.broker_url, socket_connect_timeout=5)
    try:
        beats = live_nodes(client, settings.heartbeat_grace)
    except redis.RedisError:
        return False
    finally:
        client.close()
    return any(n != node and b.get("queue") == settings.queue for n, b in beats.items())


def _elsewhere(runner: CellRunner, settings: Settings, stored: Mapping[str, Any]) -> bool:
    """Whether the stored record was written by another worker, or by another process of
    this one while no other worker is alive."""
    worker = stored.get("worker")
    first = worker if isinstance(worker, Mapping) else {}
    if first.get("node") != runner.node:
        return True
    if first.get("pid") == os.getpid():
        return False
    return not _others_alive(settings, runner.node)


def _checked_elsewhere(runner: CellRunner, run_id: str, state: Mapping[str, Any], key: str) -> bool:
    """Whether the cell has a verdict (that verifies) from a re-run in another process: a
    message sent again does not replace it."""
    name = C.CANARY_FIELD + key
    entry = state.get(name)
    if not isinstance(entry, Mapping) or entry.get("same_process") is not False:
        return False
    if runner.settings.secret:
        try:
            verify_entry(entry, runner.settings.secret, run_id, name)
        except SignatureError:
            return False
    return True


def _check(runner: CellRunner, run_id: str, cell: Cell) -> None:
    entry = check_cell(runner, run_id, cell)
    if entry is not None and entry["match"] is False:
        key = cell_key(cell.condition, cell.replicate)
        _log.warning("canary: %s of run %s differs when run again", key, run_id)


def _check_another(
    runner: CellRunner, settings: Settings, run_id: str, state: Mapping[str, Any], keys: list[str]
) -> None:
    """Check one cell of ``keys`` (up to ``CANARY_LOOKS`` of them, in random order) that
    another process recorded and none has checked yet: two processes that each hold a
    message of their own cells then check each other's, whatever order they take them in."""
    keys = [k for k in keys if not _checked_elsewhere(runner, run_id, state, k)]
    random.shuffle(keys)
    for cell in cells_of(runner.manifest(run_id), keys[: C.CANARY_LOOKS]):
        stored = runner.store.get_record(run_id, cell.condition, cell.replicate)
        if stored is not None and _elsewhere(runner, settings, stored):
            _check(runner, run_id, cell)
            return


def run_message(
    runner: CellRunner, settings: Settings, run_id: str, raw: list[Any], handbacks: int
) -> None:
    """Handle one canary message (see the module docstring)."""
    cells = runner.cells(run_id, raw)
    manifest = runner.manifest(run_id)
    sample = set(sample_of(manifest))
    state = runner.store.state(run_id)
    waiting: list[Cell] = []  # no record yet: not counted as a hand-back
    elsewhere: list[Cell] = []  # the record is this process's (or node's): try another
    for cell in cells:
        key = cell_key(cell.condition, cell.replicate)
        if key not in sample:
            raise TaskMessageError(f"canary message for run '{run_id}': {key} is not sampled")
        stored = runner.store.get_record(run_id, cell.condition, cell.replicate)
        if _checked_elsewhere(runner, run_id, state, key):
            continue
        if stored is None:
            if not runner.store.cancelled(run_id):
                waiting.append(cell)
        elif handbacks < C.CANARY_HANDBACKS and not _elsewhere(runner, settings, stored):
            elsewhere.append(cell)
        else:
            _check(runner, run_id, cell)
    if elsewhere:
        # another process holds messages of this one's cells the same way: take one of them
        mine = {cell_key(c.condition, c.replicate) for c in cells}
        _check_another(runner, settings, run_id, state, sorted(sample - mine))
    if waiting or elsewhere:
        send(settings, run_id, waiting, handbacks)
        send(settings, run_id, elsewhere, handbacks + 1)
        # busy meanwhile, so the worker gives the message to another of its processes; the
        # pause is drawn at random, so two processes that each hold a message of their own
        # cells do not hand them back in step (each then takes its own back every time)
        time.sleep(C.CANARY_PAUSE * (1.0 + random.random()))


def resend_lost(store: Any, settings: Settings, run_id: str, pending: list[str]) -> list[str]:
    """Send again the canary messages of ``pending`` cells that have none left in the
    broker (``settings``: the run's own); returns the cells sent."""
    from crystallize_dist.distributed.broker import queued_cells

    queued = queued_cells(settings, run_id, canary=True)
    lost = [k for k in pending if k not in queued]
    send(settings, run_id, cells_of(store.manifest(run_id), lost))
    return lost
