"""CeleryExecution: an executor plugin that runs an experiment's cells on Celery workers.

``Experiment(..., plugins=[CeleryExecution()]).run()`` plans as usual, writes a manifest,
enqueues one task per cell, waits for the records and aggregates them locally: the Result
(and its digest) is the one SerialExecution gives. Workers load the experiment by
reference: the module attribute that holds it (found automatically) or ``experiment_ref``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crystallize_dist import constants as C
from crystallize_dist.config import Settings
from crystallize_dist.engine.progress import progress_bar
from crystallize_dist.errors import ExperimentLoadError, InvalidOptionError, NestedRunError
from crystallize_dist.model.experiment import Experiment
from crystallize_dist.model.plugins import BasePlugin, ExperimentLike
from crystallize_dist.model.references import ExperimentRef, find_ref, parse_ref

if TYPE_CHECKING:
    from crystallize_dist.engine.runspec import RunSpec


def _same_fingerprint_ref(experiment: Experiment) -> ExperimentRef | None:
    """A module-level Experiment with the same fingerprint (e.g. the one a factory built)."""
    import sys

    wanted = experiment.fingerprint()
    names = {type(experiment.datasource).__module__, "__main__"}
    names.update(type(s).__module__ for s in experiment.pipeline.steps)
    for name in sorted(names):
        module = sys.modules.get(name)
        for attr, value in vars(module).items() if module else []:
            if (
                isinstance(value, Experiment)
                and value is not experiment
                and value.fingerprint() == wanted
            ):
                saved = value
                probe = find_ref(saved)
                if probe is not None:
                    return ExperimentRef(probe.kind, probe.target, attr)
    return None


def say(line: str) -> None:
    """One line on stderr, for the person waiting for a run."""
    print(f"crystallize-dist: {line}", file=sys.stderr, flush=True)


def _check_treatments(experiment: Experiment, spec: RunSpec) -> None:
    """Workers load the experiment by reference and look its treatments up by name: a run
    can pick some of them (``run(treatments=[...])``), not bring treatments of its own."""
    from crystallize_dist.engine.fingerprint import treatment_parts

    defined = {t.name: t for t in experiment.defined_treatments}
    for t in spec.treatments:
        own = defined.get(t.name)
        if own is not t and (own is None or treatment_parts([own]) != treatment_parts([t])):
            raise InvalidOptionError(
                f"CeleryExecution can run only the experiment's own treatments (workers "
                f"load it by reference): treatment '{t.name}' is not one of "
                f"{sorted(defined)}; add it to the experiment's treatments"
            )


@dataclass
class CeleryExecution(BasePlugin):
    """Run cells on Celery workers through Redis; same Result as the local executors.

    ``broker_url`` defaults to ``CRYSTALLIZE_DIST_BROKER_URL``; ``experiment_ref`` (e.g.
    ``"examples/quickstart.py:experiment"``) is found automatically when the experiment is a
    module-level attribute; ``timeout`` (seconds) bounds the wait for workers.
    """

    broker_url: str | None = None
    experiment_ref: str | None = None
    cells_per_task: int = 1
    timeout: float | None = None
    progress: bool = False
    poll_interval: float = 0.1
    run_id: str | None = field(default=None, init=False, compare=False)
    signatures: dict[str, Any] = field(default_factory=dict, init=False, compare=False)

    def _ref(self, experiment: Experiment) -> tuple[ExperimentRef, str]:
        if self.experiment_ref:
            return parse_ref(self.experiment_ref), self.experiment_ref
        ref = find_ref(experiment) or _same_fingerprint_ref(experiment)
        if ref is None:
            raise ExperimentLoadError(
                "CeleryExecution cannot find the experiment at module level, so workers "
                "could not load it; pass CeleryExecution(experiment_ref='path/to/file.py:attr')"
            )
        return ref, str(ref)

    def run_experiment_loop(
        self, experiment: ExperimentLike, replicate_fn: Callable[[int], Any]
    ) -> list[dict[str, Any]]:
        from crystallize_dist.distributed.coordinator import create_run
        from crystallize_dist.distributed.manifest import run_options
        from crystallize_dist.distributed.publisher import enqueue
        from crystallize_dist.distributed.store import store_for
        from crystallize_dist.distributed.waiting import wait_for

        if os.environ.get(C.ENV_IN_WORKER):
            raise NestedRunError(
                "CeleryExecution cannot submit a run from inside a crystallize-dist worker "
                "(it would wait for cells that need the very workers it occupies); if the "
                "experiment's module runs it when imported, put that under "
                '`if __name__ == "__main__":`'
            )
        settings = Settings.from_env(broker_url=self.broker_url)
        spec: RunSpec | None = getattr(replicate_fn, "spec", None)
        if spec is None or not isinstance(spec.experiment, Experiment):
            raise RuntimeError("CeleryExecution.run_experiment_loop runs inside Experiment.run")
        experiment = spec.experiment
        _check_treatments(experiment, spec)
        ref, text = self._ref(experiment)
        store = store_for(settings)
        try:
            from crystallize_dist.distributed.store.eviction import check_eviction

            evicts = check_eviction(store, settings)  # refuses with REQUIRE_NOEVICTION
            if evicts:
                say(f"warning: {evicts}")
            options = run_options(settings, cells_per_task=self.cells_per_task, local=False)
            from crystallize_dist.distributed.bundle import attach_bundle

            options = attach_bundle(options, ref, store, settings)
            manifest = create_run(
                store, experiment, ref, text, spec, options, secret=settings.secret
            )
            self.run_id = manifest["run_id"]
            say(
                f"run {self.run_id} submitted ({spec.plan.n_cells} cells, queue "
                f"'{settings.queue}'); if this process stops, `crystallize-dist wait "
                f"{self.run_id}` waits for it"
            )
            enqueue(settings, self.run_id, list(spec.plan.cells()), self.cells_per_task)
            bar = progress_bar(spec.plan.n_cells, "Cells", self.progress)
            try:
                wait_for(
                    store,
                    self.run_id,
                    timeout=self.timeout,
                    poll=self.poll_interval,
                    on_progress=bar.update,
                    settings=settings,
                    say=say,
                )
            finally:
                bar.close()
            from crystallize_dist.distributed.artifacts import artifact_root, fetch
            from crystallize_dist.distributed.verification import RunVerification

            checks = RunVerification(settings.secret, self.run_id)
            records = store.iter_records(self.run_id, check=checks.records)
            out = list(fetch(store, records, artifact_root(experiment), checks.notes))
            self.signatures = {**checks.summary(), "notes": sorted(checks.notes)}
            return out
        finally:
            store.close()

    def run_meta(self) -> dict[str, Any]:
        """Added to the result's provenance: the run id and what was verified."""
        return {"run_id": self.run_id, "executor": "celery", "signatures": self.signatures}
