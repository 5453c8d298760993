"""Result and its metric structs, with lossless JSON round trips."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crystallize_dist.canonical import json_text, metrics_digest, paused_gc, to_jsonable
from crystallize_dist.model.cell_errors import error_from_dict, error_to_dict
from crystallize_dist.model.compare import Comparison

__all__ = [
    "ExperimentMetrics",
    "HypothesisResult",
    "Result",
    "TreatmentMetrics",
    "error_from_dict",
    "error_to_dict",
]


@dataclass
class TreatmentMetrics:
    """Metric name -> flat list of values, in replicate order."""

    metrics: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class HypothesisResult:
    """One hypothesis: ``results`` per treatment and the ``ranking`` of treatments."""

    name: str
    results: dict[str, Any]
    ranking: dict[str, Any]

    def get_for_treatment(self, treatment: str) -> Any:
        return self.results.get(treatment)


@dataclass
class ExperimentMetrics:
    baseline: TreatmentMetrics
    treatments: dict[str, TreatmentMetrics]
    hypotheses: list[HypothesisResult] = field(default_factory=list)

    def to_df(self) -> Any:
        """One row per (hypothesis, treatment): ``condition`` (the treatment),
        ``hypothesis`` and the verifier's fields (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                "pandas is required for to_df(); install it with: pip install pandas"
            ) from exc

        rows = []
        for hyp in self.hypotheses:
            for name, res in hyp.results.items():
                row = {"condition": name, "hypothesis": hyp.name}
                if isinstance(res, Mapping):
                    row.update(res)
                else:
                    row["result"] = res
                rows.append(row)
        return pd.DataFrame(rows)


class Result:
    """What a run returns: metrics, hypotheses, artifacts, errors, provenance and digest."""

    def __init__(
        self,
        metrics: ExperimentMetrics,
        artifacts: dict[str, Any] | None = None,
        errors: dict[str, BaseException] | None = None,
        provenance: dict[str, Any] | None = None,
        *,
        timestamp: str | None = None,
    ) -> None:
        self.metrics = metrics
        self.artifacts = artifacts or {}
        self.errors = errors or {}
        self.provenance = provenance or {}
        self.timestamp = timestamp
        self.artifact_steps: dict[str, str] = {}

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON of the metrics (see ``crystallize_dist/canonical.py``)."""
        return metrics_digest(
            self.metrics.baseline.metrics,
            {name: tm.metrics for name, tm in self.metrics.treatments.items()},
        )

    @property
    def missing(self) -> list[str]:
        """Cells (``condition:replicate``) without a record; empty for a complete result."""
        return list(self.provenance.get("missing", []))

    def get_artifact(self, name: str) -> Any:
        return self.artifacts.get(name)

    def get_hypothesis(self, name: str) -> HypothesisResult | None:
        return next((h for h in self.metrics.hypotheses if h.name == name), None)

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON types (see ``to_json``)."""
        out = self._dict()
        out["provenance"] = to_jsonable(self.provenance, strict=False)
        return out

    def _dict(self) -> dict[str, Any]:
        """to_dict without converting the provenance. A partial result (cells without a
        record, ``missing``) says ``"complete": false`` and has no digest: its numbers are
        not the run's."""
        complete = not self.provenance.get("missing")
        return {
            "complete": complete,
            "timestamp": self.timestamp,
            "metrics": {
                "baseline": to_jsonable(self.metrics.baseline.metrics, strict=False),
                "treatments": {
                    name: to_jsonable(tm.metrics, strict=False)
                    for name, tm in self.metrics.treatments.items()
                },
            },
            "hypotheses": [
                {
                    "name": h.name,
                    "results": to_jsonable(h.results, strict=False),
                    "ranking": to_jsonable(h.ranking, strict=False),
                }
                for h in self.metrics.hypotheses
            ],
            "artifacts": sorted(self.artifacts),
            "artifact_paths": {
                name: {cond: str(path) for cond, path in by_cond.items()}
                for name, by_cond in self.artifacts.items()
                if isinstance(by_cond, Mapping)
            },
            "errors": {key: str(err) for key, err in self.errors.items()},
            "error_details": {key: error_to_dict(err) for key, err in self.errors.items()},
            "provenance": self.provenance,
            "digest": self.digest if complete else None,
        }

    def to_json(self, path: str | Path | None = None, indent: int | None = 2) -> str | None:
        """The result as JSON text (written to ``path`` when given). The provenance is
        encoded as it is, converting only values that are not JSON types already, so a
        100,000-cell result is not copied once more on its way out."""
        with paused_gc():
            text = json_text(self._dict(), indent=indent, ensure_ascii=False)
        if path is None:
            return text
        Path(path).write_text(text)
        return None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        metrics = data.get("metrics", {})
        hyps = [
            HypothesisResult(h["name"], dict(h.get("results", {})), dict(h.get("ranking", {})))
            for h in data.get("hypotheses", [])
        ]
        details = data.get("error_details", {})
        errors: dict[str, BaseException] = {
            key: error_from_dict(details.get(key, {"message": msg}))
            for key, msg in data.get("errors", {}).items()
        }
        artifacts = {
            name: {cond: Path(p) for cond, p in by_cond.items()}
            for name, by_cond in data.get("artifact_paths", {}).items()
        }
        return cls(
            ExperimentMetrics(
                TreatmentMetrics(dict(metrics.get("baseline", {}))),
                {n: TreatmentMetrics(dict(m)) for n, m in metrics.get("treatments", {}).items()},
                hyps,
            ),
            artifacts=artifacts,
            errors=errors,
            provenance=dict(data.get("provenance", {})),
            timestamp=data.get("timestamp"),
        )

    @classmethod
    def from_json(cls, text: str) -> Result:
        return cls.from_dict(json.loads(text))

    def to_parquet(self, path: str | Path) -> None:
        """Rows of (condition, metric, values, mean); needs pandas with a parquet engine."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                "pandas is required for to_parquet(); install it with: pip install pandas"
            ) from exc

        rows = []
        conds = {"baseline": self.metrics.baseline, **self.metrics.treatments}
        for cond, tm in conds.items():
            for metric, values in tm.metrics.items():
                numeric = [v for v in values if isinstance(v, (int, float))]
                mean = sum(numeric) / len(numeric) if numeric else None
                rows.append({"condition": cond, "metric": metric, "values": values, "mean": mean})
        pd.DataFrame(rows).to_parquet(path)

    # -- reading the numbers -------------------------------------------------------------
    def conditions(self) -> dict[str, dict[str, list[Any]]]:
        """Condition -> its metrics (name -> flat list of values), the baseline first."""
        return {
            "baseline": self.metrics.baseline.metrics,
            **{name: tm.metrics for name, tm in self.metrics.treatments.items()},
        }

    def compare(self, treatment: str, metric: str, baseline: str = "baseline") -> Comparison:
        """``treatment`` against ``baseline`` on ``metric``, replicate by replicate (the
        conditions share each replicate's seed, so the differences are paired): see
        ``model/compare.py`` for every number it gives."""
        from crystallize_dist.model.comparisons import Comparer

        return Comparer(self.conditions(), self.provenance).one(treatment, metric, baseline)

    def comparisons(
        self, metrics: list[str] | None = None, baseline: str = "baseline"
    ) -> list[Comparison]:
        """Every treatment against ``baseline`` on each of ``metrics`` (every metric that
        has one number per cell when None)."""
        from crystallize_dist.model.comparisons import Comparer

        return Comparer(self.conditions(), self.provenance).every(metrics, baseline)[0]

    def value_rows(self) -> list[dict[str, Any]]:
        """The long format: one row per recorded value, with its condition, replicate, seed,
        metric, index within the cell, value, status and worker (``model/cell_values.py``)."""
        from crystallize_dist.model.cell_values import value_rows

        return list(value_rows(self.conditions(), self.provenance))

    def to_pandas(self) -> Any:
        """``value_rows`` as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                "pandas is required for to_pandas(); install it with: pip install pandas"
            ) from exc
        from crystallize_dist.model.cell_values import ROW_COLUMNS

        return pd.DataFrame(self.value_rows(), columns=list(ROW_COLUMNS))

    def to_html(self, path: str | Path) -> Path:
        """Write the result's report page to ``path``: one HTML file that works offline
        (needs the ``crystallize-dist[report]`` extra for its charts)."""
        from crystallize_dist.model.report import ReportInput, write_report

        return write_report(ReportInput.of(self), path)

    def print_tree(self, fmt: str = "treatment > replicate > step") -> None:
        """Print provenance grouped by the tokens of ``fmt`` (treatment, replicate, step,
        and ``action`` last); uses rich when its console is available."""
        from crystallize_dist.model.tree import render_tree

        render_tree(self, fmt)

    def __repr__(self) -> str:
        return (
            f"Result(conditions={1 + len(self.metrics.treatments)}, "
            f"errors={len(self.errors)}, digest={self.digest[:12]})"
        )
