"""Replay: re-run recorded cells of a run in this process and compare them with the store.

Replay runs the run's code on purpose. With a secret, the manifest must verify first and
records are read through their signatures. The experiment is loaded as a worker would
(``ensure_code``: the submitted code, from the bundle when this machine's copy differs),
prepared with the manifest's plan, and each chosen cell is run on the engine's cell path
with the manifest's seed. A cell matches when its *metrics digest* - sha256 of the
canonical JSON of the record's metrics - equals the stored record's; for a stored error
record the error type is compared instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crystallize_dist.canonical import canonical_json
from crystallize_dist.config import Settings
from crystallize_dist.distributed.record_signatures import RecordVerifier
from crystallize_dist.distributed.signing import verify_manifest
from crystallize_dist.distributed.store.base import RunStore
from crystallize_dist.distributed.store.records import cell_key
from crystallize_dist.engine.cell import execute_cell
from crystallize_dist.engine.plan import Cell, RunPlan
from crystallize_dist.engine.records import STATUS_OK
from crystallize_dist.errors import InvalidOptionError, ReplayMismatchError
from crystallize_dist.model.references import ExperimentRef, load_ref


def metrics_digest(metrics: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of a record's metrics."""
    return hashlib.sha256(canonical_json(dict(metrics)).encode()).hexdigest()


def outcome(record: Mapping[str, Any]) -> str:
    """What a record is compared by: ``metrics <digest>`` or ``error <Type>``."""
    if record.get("status") == STATUS_OK:
        return "metrics " + metrics_digest(record.get("metrics") or {})
    error = record.get("error") or {}
    kind = str(error.get("type") or "Exception")
    original = error.get("original")
    if isinstance(original, Mapping) and original.get("type"):
        kind += f"({original['type']})"
    return "error " + kind


def _short(text: str) -> str:
    head, _, digest = text.partition(" ")
    return f"{head} {digest[:12]}" if head == "metrics" else text


@dataclass(frozen=True)
class CellComparison:
    """One replayed cell: its key, seed and both outcomes."""

    key: str
    seed: int
    stored: str
    replayed: str

    @property
    def match(self) -> bool:
        return self.stored == self.replayed

    def line(self) -> str:
        return (
            f"mismatch {self.key} (seed {self.seed}): stored {_short(self.stored)}, "
            f"replayed {_short(self.replayed)}"
        )


@dataclass
class ReplayReport:
    """Every comparison of one replay, and a note when the code's fingerprint changed."""

    run_id: str
    comparisons: list[CellComparison] = field(default_factory=list)
    note: str | None = None

    @property
    def matches(self) -> int:
        return sum(c.match for c in self.comparisons)

    @property
    def mismatches(self) -> int:
        return len(self.comparisons) - self.matches

    def lines(self) -> list[str]:
        """A note (if any), one line per mismatch, then ``N matches, M mismatches``."""
        out = [f"note: {self.note}"] if self.note else []
        out += [c.line() for c in self.comparisons if not c.match]
        out.append(f"{self.matches} matches, {self.mismatches} mismatches")
        return out

    def check(self) -> None:
        """Raise ReplayMismatchError when any replayed cell differs."""
        if self.mismatches:
            raise ReplayMismatchError(
                f"run '{self.run_id}': {self.mismatches} of {len(self.comparisons)} replayed "
                "cells differ from their stored records"
            )


def choose_cells(
    store: RunStore, run_id: str, plan: RunPlan, count: int | None, secret: str | None = None
) -> list[tuple[Cell, dict[str, Any]]]:
    """Recorded cells in canonical order with their records; the first ``count`` (all when
    None). With ``secret`` a record that does not verify is compared as the failed cell
    (TamperedRecordError) it is read as."""
    if count is not None and count < 1:
        raise InvalidOptionError(f"--cells must be >= 1, got {count}")
    check = RecordVerifier(secret, run_id) if secret else None
    records = store.iter_records(run_id, check=check)
    stored = {cell_key(r["condition"], r["replicate"]): r for r in records}
    out = []
    for cell in plan.cells():
        record = stored.get(cell_key(cell.condition, cell.replicate))
        if record is not None:
            out.append((cell, record))
            if count is not None and len(out) >= count:
                break
    return out


def replay_run(
    run_id: str, *, store: RunStore, settings: Settings, cells: int | None = None
) -> ReplayReport:
    """Re-run the first ``cells`` recorded cells of ``run_id`` (all when None) here."""
    from crystallize_dist.distributed.bundle import ensure_code
    from crystallize_dist.distributed.preparing import spec_for_run

    manifest = store.manifest(run_id)
    if settings.secret:  # before anything it names is imported
        verify_manifest(manifest, run_id, settings.secret)
    plan = RunPlan.from_dict(manifest["plan"])
    chosen = choose_cells(store, run_id, plan, cells, settings.secret)
    report = ReplayReport(run_id)
    if not chosen:
        return report
    info = manifest["experiment"]
    base = load_ref(ensure_code(ExperimentRef.from_dict(info["ref"]), manifest, store, settings))
    found = base.fingerprint()
    if found != info["fingerprint"]:
        report.note = (
            f"the experiment's code differs from what was submitted (fingerprint "
            f"{found[:12]} here, {info['fingerprint'][:12]} in the manifest)"
        )
    spec = spec_for_run(base, manifest)
    for cell, record in chosen:
        fresh = execute_cell(spec, cell)
        report.comparisons.append(
            CellComparison(
                cell_key(cell.condition, cell.replicate), cell.seed, outcome(record), outcome(fresh)
            )
        )
    return report
